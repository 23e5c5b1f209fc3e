"""Labelled snapshots: features as of a cutoff joined with the churn label of the horizon after it."""

from __future__ import annotations

import hashlib

import pandas as pd

from features.customer import churn_labels, customer_features, time_to_next_activity
from features.purchase_history import purchase_history
from features.season import with_season


def labelled_snapshot(events, as_of: pd.Timestamp, horizon_days: int, lookback_days: int,
                      activity_types: tuple[str, ...] = ("purchase",), until: pd.Timestamp | None = None
                      ) -> pd.DataFrame:
    """One row per in-scope customer: customer_id, cutoff, the features, the season inputs of the cutoff
    (`features.season`), the BTYD purchase history and `churned`;
    with `until` (the last instant the caller may read, e.g. the run's as-of), also the churn-time target
    `next_activity_days` / `observed_days` (see `time_to_next_activity`)."""
    feats = customer_features(events, as_of, lookback_days)
    out = feats.join(purchase_history(events, as_of, feats.index))
    if until is not None:
        out = out.join(time_to_next_activity(events, as_of, until, feats.index, activity_types))
    out = out.reset_index()
    out.insert(1, "cutoff", pd.Timestamp(as_of))
    out = with_season(out)
    out["churned"] = churn_labels(events, as_of, horizon_days, feats.index, activity_types).to_numpy()
    return out


CONTACTED = "contacted_in_label_window"  # a flag of the snapshot row, never a model input (see README)
CONTACTED_SETTINGS = ("exclude", "keep")  # what training does with the flagged rows
EXCLUDED = "excluded_contacted"  # the split of a flagged row left out


def stacked_snapshots(events, cutoffs: list[pd.Timestamp], horizon_days: int, lookback_days: int,
                      activity_types: tuple[str, ...] = ("purchase",), contacts: pd.DataFrame | None = None,
                      until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Snapshots at several cutoffs, oldest first (a customer appears once per cutoff), with the flag CONTACTED:
    the customer has a contact in `contacts` (customer_id, contacted_at) inside the cutoff's label window."""
    frame = pd.concat([labelled_snapshot(events, c, horizon_days, lookback_days, activity_types, until)
                       for c in cutoffs], ignore_index=True)
    frame[CONTACTED] = contacted_in_label_window(frame, contacts, horizon_days).to_numpy()
    return frame


def contacted_in_label_window(frame: pd.DataFrame, contacts: pd.DataFrame | None, horizon_days: int) -> pd.Series:
    """Per snapshot row (customer_id, cutoff): whether the customer was contacted in (cutoff, cutoff + horizon],
    the window its label is read from (index as `frame`)."""
    flag = pd.Series(False, index=frame.index, name=CONTACTED)
    if contacts is None or not len(contacts) or not len(frame):
        return flag
    when = pd.to_datetime(contacts["contacted_at"], utc=True)
    c = pd.DataFrame({"customer_id": contacts["customer_id"].astype(str).to_numpy(), "contacted_at": when.to_numpy()})
    rows = pd.DataFrame({"row": frame.index, "customer_id": frame["customer_id"].astype(str).to_numpy(),
                         "cutoff": pd.to_datetime(frame["cutoff"], utc=True).to_numpy()})
    pairs = rows.merge(c, on="customer_id")
    inside = (pairs["contacted_at"] > pairs["cutoff"]) & (
        pairs["contacted_at"] <= pairs["cutoff"] + pd.Timedelta(days=horizon_days))
    flag.loc[pairs.loc[inside, "row"].unique()] = True
    return flag


def split_by_plan(frame: pd.DataFrame, plan, contacted: str) -> pd.DataFrame:
    """The snapshots with a `split` column: "validation" at the plan's validation cutoff, else "train"; a row
    flagged CONTACTED is EXCLUDED from validation always (it measures behaviour without a contact) and from
    training when `contacted` is "exclude" ("keep": it trains)."""
    if contacted not in CONTACTED_SETTINGS:
        raise ValueError(f"contacted_in_training must be one of {CONTACTED_SETTINGS}, not {contacted!r}")
    split = (frame["cutoff"] == plan.validation).map({True: "validation", False: "train"})
    if CONTACTED in frame:
        flagged = frame[CONTACTED].astype(bool)
        split = split.mask(flagged & ((split == "validation") | (contacted == "exclude")), EXCLUDED)
    return frame.assign(split=split)


def contacted_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Rows flagged CONTACTED per cutoff (ISO date), every cutoff of the frame listed (0 when none)."""
    flags = frame[CONTACTED] if CONTACTED in frame else pd.Series(False, index=frame.index)
    counts = flags.astype(int).groupby(pd.to_datetime(frame["cutoff"], utc=True).dt.date).sum()
    return {d.isoformat(): int(n) for d, n in counts.items()}


def snapshot_digest(frame: pd.DataFrame) -> str:
    """A content digest of a whole snapshot (MLflow's own digest reads only the first 10k rows)."""
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(h.tobytes()).hexdigest()[:16]
