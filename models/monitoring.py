"""Monitoring a published model after the fact (pure): realised quality once a horizon has passed, and a
label-free estimate from the calibrated probabilities while it is still open.

The estimate is confidence-based performance estimation: if the scores are calibrated, customer i churns with
probability p_i, independently, so the expected number of (churner, stayer) pairs the model orders rightly is
sum over i != j of p_i (1 - p_j) [p_i > p_j] (ties half), and the expected ROC-AUC is that over the expected
number of such pairs, sum over i != j of p_i (1 - p_j). The expected Brier score is mean p (1 - p), the expected
churn rate mean p. It is only as good as the calibration: it measures the model against its own beliefs, so a
model that was right about the past and is now wrong about a changed world looks fine until the labels come in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from expectations.scores import RISK_TIERS
from models.evaluate import calibration_table, clip_probabilities, metrics

DECILES = 10


def horizon_passed(as_of_time: pd.Timestamp, horizon_days: int, last_event: pd.Timestamp) -> bool:
    """Whether the whole label window (as_of, as_of + horizon] lies at or before the last stored event."""
    return pd.Timestamp(as_of_time) + pd.Timedelta(days=int(horizon_days)) <= pd.Timestamp(last_event)


def horizon_ends(as_of_time: pd.Timestamp, horizon_days: int) -> pd.Timestamp:
    return pd.Timestamp(as_of_time) + pd.Timedelta(days=int(horizon_days))


def expected_roc_auc(p) -> float:
    """The ROC-AUC expected if each customer churns with their score as probability (ties count half)."""
    p = np.asarray(p, dtype=float)
    if len(p) < 2:
        return float("nan")
    values, inverse = np.unique(p, return_inverse=True)
    pos = np.bincount(inverse, weights=p)  # expected churners per distinct score
    neg = np.bincount(inverse, weights=1 - p)  # expected stayers per distinct score
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    # pairs within one score value (i != j) are ties: half credit; a customer is never paired with itself
    same = pos * neg - np.bincount(inverse, weights=p * (1 - p))
    right = float(np.sum(pos * neg_below) + 0.5 * np.sum(same))
    pairs = float(p.sum() * (1 - p).sum() - np.sum(p * (1 - p)))
    return right / pairs if pairs > 0 else float("nan")


def expected_metrics(p) -> dict[str, float]:
    """The label-free estimate: expected ROC-AUC, Brier score and churn rate of calibrated scores."""
    p = clip_probabilities(p)
    return {"roc_auc": expected_roc_auc(p), "brier": float(np.mean(p * (1 - p))), "base_rate": float(p.mean()),
            "n": float(len(p))}


def lift_by_decile(y, p, deciles: int = DECILES) -> pd.DataFrame:
    """Per score decile (1 = highest scores): customers, mean score, observed churn rate and its lift over the
    overall rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    rank = pd.Series(-p).rank(method="first").to_numpy()
    decile = np.minimum((rank - 1) * deciles // len(p), deciles - 1).astype(int) + 1
    base = y.mean()
    t = (pd.DataFrame({"decile": decile, "predicted": p, "observed": y}).groupby("decile")
         .agg(customers=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean"))
         .reset_index())
    t["lift"] = t["observed"] / base if base > 0 else np.nan
    return t


def by_tier(y, p, tiers) -> pd.DataFrame:
    """Per risk tier: customers, mean score, observed churn rate, lift over the overall rate, share of churners."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    frame = pd.DataFrame({"tier": np.asarray(tiers), "predicted": p, "observed": y})
    t = (frame.groupby("tier").agg(customers=("observed", "size"), predicted=("predicted", "mean"),
                                   observed=("observed", "mean"), churners=("observed", "sum"))
         .reindex(list(RISK_TIERS)).dropna(subset=["customers"]).reset_index())
    base = y.mean()
    t["lift"] = t["observed"] / base if base > 0 else np.nan
    t["share_of_churners"] = t["churners"] / max(1.0, y.sum())
    return t.astype({"customers": "int64", "churners": "int64"})


def realised(y, p, tiers) -> dict:
    """Realised quality of one scored day: the training metrics (ROC-AUC, PR-AUC, Brier, lift, calibration
    error), the calibration curve, lift by decile and by tier."""
    y = np.asarray(y, dtype=int)
    single_class = len(np.unique(y)) < 2
    out = {"metrics": ({"base_rate": float(y.mean()), "n": float(len(y))} if single_class else metrics(y, p)),
           "calibration": calibration_table(y, np.asarray(p, dtype=float)).to_dict("records"),
           "lift_by_decile": lift_by_decile(y, p).to_dict("records"),
           "by_tier": by_tier(y, p, tiers).to_dict("records")}
    if single_class:
        out["note"] = "every customer had the same outcome: ROC-AUC and PR-AUC are undefined"
    return out


def in_sample(as_of_time: pd.Timestamp, horizon_end: pd.Timestamp, training_data_end: str | None) -> str | None:
    """Whether a scored day's outcome window lies in the data its model was trained on (the version's data
    ends on `training_data_end`, a day): "whole" when the window ends by then (its outcomes were training
    labels of the same customers, so the realised figures are optimistic), "partly" when the window starts
    before it, None when the window is wholly after the training data (an honest, out-of-sample figure)."""
    if not training_data_end:
        return None
    end = pd.Timestamp(training_data_end).date()
    if horizon_end.date() <= end:
        return "whole"
    return "partly" if as_of_time.date() < end else None


@dataclass(frozen=True)
class Degradation:
    """Whether a model's realised ROC-AUC fell below its training estimate by more than the margin."""

    degraded: bool
    realised: float | None
    expected: float | None
    margin: float
    message: str


def degradation(realised_auc: float | None, training_auc: float | None, margin: float) -> Degradation:
    """The degradation decision: realised ROC-AUC < training (validation) ROC-AUC - margin."""
    if realised_auc is None or training_auc is None or np.isnan(realised_auc) or np.isnan(training_auc):
        return Degradation(False, realised_auc, training_auc, margin,
                           "not judged: " + ("no realised ROC-AUC" if realised_auc is None or np.isnan(realised_auc)
                                             else "the model version has no validation ROC-AUC"))
    drop = training_auc - realised_auc
    if drop > margin:
        return Degradation(True, realised_auc, training_auc, margin,
                           f"realised ROC-AUC {realised_auc:.4f} is {drop:.4f} below the training estimate "
                           f"{training_auc:.4f} (margin {margin:g})")
    return Degradation(False, realised_auc, training_auc, margin,
                       f"realised ROC-AUC {realised_auc:.4f} vs training estimate {training_auc:.4f}: within the "
                       f"margin {margin:g}")
