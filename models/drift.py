"""Distribution drift between training time and scoring time: population stability index (PSI)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EPS = 1e-4


def reference_bins(frame: pd.DataFrame, bins: int = 10, history_days: float | None = None,
                   relative: tuple[str, ...] = ()) -> dict:
    """Per column: decile edges of the reference values and the share in each bin (missing is a bin of its own).

    Columns in `relative` grow with the history the store holds whatever customers do (tenure, purchases
    since the first event): they are binned divided by `history_days` (the days of history at the
    reference cutoff) and marked so, and `drift_report` divides the current values the same way, so a
    store that is simply older than at training is not drift.
    """
    out = {}
    for col in frame.columns:
        rel = col in relative and history_days is not None and history_days > 0
        v = frame[col].to_numpy(dtype="float64") / (history_days if rel else 1.0)
        ok = v[~np.isnan(v)]
        edges = np.unique(np.quantile(ok, np.linspace(0, 1, bins + 1)[1:-1])) if len(ok) else np.array([])
        out[col] = {"edges": edges.tolist(), "shares": _shares(v, edges).tolist(), **({"per_history_day": True}
                                                                                      if rel else {})}
    return out


def _shares(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    missing = np.isnan(v)
    idx = np.searchsorted(edges, v[~missing], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, missing.sum())
    return counts / max(1, len(v))


def psi(reference: dict, values: pd.Series) -> float:
    """PSI of `values` against one column's reference: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large shift."""
    expected = np.asarray(reference["shares"]) + EPS
    actual = _shares(values.to_numpy(dtype="float64"), np.asarray(reference["edges"])) + EPS
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_report(reference: dict, current: pd.DataFrame, threshold: float, history_days: float | None = None) -> dict:
    """PSI of every referenced column present in `current`, the largest, and those above the threshold.

    Columns the reference binned per day of history are divided by `history_days` (the days of history
    the store holds at the scoring date) first; without it they are left out.
    """
    def scaled(c: str, ref: dict) -> pd.Series | None:
        if not ref.get("per_history_day"):
            return current[c]
        return current[c] / history_days if history_days else None

    values = {c: psi(ref, s) for c, ref in reference.items() if c in current.columns
              and (s := scaled(c, ref)) is not None}
    over = {c: round(v, 4) for c, v in sorted(values.items(), key=lambda kv: -kv[1]) if v > threshold}
    worst = max(values, key=values.get) if values else None
    return {"psi": {c: round(v, 4) for c, v in values.items()}, "max_psi": round(values[worst], 4) if worst else 0.0,
            "max_psi_column": worst, "over_threshold": over, "threshold": threshold, "drifted": bool(over)}


DRIFT_ACTIONS = ("warn", "refuse")


@dataclass(frozen=True)
class DriftDecision:
    """Whether to publish the scores, whether to warn, and the sentence that says why."""

    publish: bool
    warn: bool
    message: str


def drift_decision(report: dict, action: str) -> DriftDecision:
    """Publish unless drifted and the action is "refuse"; warn on drift that is published anyway (a refusal says it
    once, as the error that stops the run)."""
    if action not in DRIFT_ACTIONS:
        raise ValueError(f"drift action {action!r}: expected one of {DRIFT_ACTIONS}")
    if not report.get("drifted"):
        return DriftDecision(True, False, "no drift beyond the threshold")
    over = f"PSI above {report['threshold']} for {report['over_threshold']}"
    if action == "refuse":
        return DriftDecision(False, False, f"drift beyond PSI {report['threshold']} in {report['over_threshold']}: "
                                          f"scores not published (set drift_action = 'warn' to publish anyway, "
                                          f"or retrain)")
    return DriftDecision(True, True, over)
