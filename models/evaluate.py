"""Model quality metrics: ranking, probability quality, lift and calibration (pure numpy/sklearn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

TOP_FRACTIONS = (0.05, 0.10, 0.20)


def top_k_mask(p: np.ndarray, frac: float) -> np.ndarray:
    """The top `frac` of scores (ties broken by position, deterministic)."""
    k = max(1, int(round(frac * len(p))))
    order = np.argsort(-p, kind="stable")
    mask = np.zeros(len(p), dtype=bool)
    mask[order[:k]] = True
    return mask


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed churn rate per score decile."""
    q = pd.qcut(pd.Series(p).rank(method="first"), bins, labels=False)
    return (pd.DataFrame({"bin": q, "predicted": p, "observed": y})
            .groupby("bin").agg(predicted=("predicted", "mean"), observed=("observed", "mean"), n=("observed", "size"))
            .reset_index())


def clip_probabilities(p) -> np.ndarray:
    """Probabilities kept off 0 and 1 (log loss is finite); every metric and interval scores these."""
    return np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)


def metrics(y, p) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, log loss, lift and recall in the top 5/10/20%, calibration error."""
    y = np.asarray(y, dtype=int)
    p = clip_probabilities(p)
    base = y.mean()
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "base_rate": float(base),
        "n": float(len(y)),
    }
    for f in TOP_FRACTIONS:
        m = top_k_mask(p, f)
        pct = int(round(f * 100))
        out[f"lift_top{pct}"] = float(y[m].mean() / base) if base > 0 else float("nan")
        out[f"recall_top{pct}"] = float(y[m].sum() / max(1, y.sum()))
    cal = calibration_table(y, p)
    out["calibration_error"] = float(np.average(np.abs(cal["predicted"] - cal["observed"]), weights=cal["n"]))
    return out


ORACLE_MIN_COVERAGE = 0.99


def covering(oracle: pd.Series, customer_ids: pd.Series, min_coverage: float = ORACLE_MIN_COVERAGE) -> pd.Series | None:
    """The oracle when it covers at least `min_coverage` of the customers, else None (not reported)."""
    return oracle if customer_ids.isin(oracle.index).mean() >= min_coverage else None
