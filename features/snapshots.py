"""Labelled snapshots: features as of a cutoff joined with the churn label of the horizon after it."""

from __future__ import annotations

import hashlib

import pandas as pd

from features.customer import churn_labels, customer_features
from features.purchase_history import purchase_history


def labelled_snapshot(events, as_of: pd.Timestamp, horizon_days: int, lookback_days: int,
                      activity_types: tuple[str, ...] = ("purchase",)) -> pd.DataFrame:
    """One row per in-scope customer: customer_id, cutoff, the features, the BTYD purchase history and `churned`."""
    feats = customer_features(events, as_of, lookback_days)
    out = feats.join(purchase_history(events, as_of, feats.index)).reset_index()
    out.insert(1, "cutoff", pd.Timestamp(as_of))
    out["churned"] = churn_labels(events, as_of, horizon_days, feats.index, activity_types).to_numpy()
    return out


def stacked_snapshots(events, cutoffs: list[pd.Timestamp], horizon_days: int, lookback_days: int,
                      activity_types: tuple[str, ...] = ("purchase",)) -> pd.DataFrame:
    """Snapshots at several cutoffs, oldest first (a customer appears once per cutoff)."""
    return pd.concat([labelled_snapshot(events, c, horizon_days, lookback_days, activity_types) for c in cutoffs],
                     ignore_index=True)


def split_by_plan(frame: pd.DataFrame, plan) -> pd.DataFrame:
    """The snapshots with a `split` column: "validation" at the plan's validation cutoff, else "train"."""
    return frame.assign(split=(frame["cutoff"] == plan.validation).map({True: "validation", False: "train"}))


def snapshot_digest(frame: pd.DataFrame) -> str:
    """A content digest of a whole snapshot (MLflow's own digest reads only the first 10k rows)."""
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(h.tobytes()).hexdigest()[:16]
