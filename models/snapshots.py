"""Which cutoffs to train and validate on: time-ordered, label windows fully observed, no overlap."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from churn.errors import UserError


class NotEnoughHistory(UserError, ValueError):
    """The store does not reach far enough back for the requested cutoffs."""


@dataclass(frozen=True)
class CutoffPlan:
    """Training cutoffs (oldest first) and the validation cutoff after them."""

    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp
    horizon_days: int

    def as_params(self) -> dict:
        return {"train_cutoffs": ",".join(c.date().isoformat() for c in self.train),
                "validation_cutoff": self.validation.date().isoformat()}


def plan_cutoffs(data_start: pd.Timestamp, as_of: pd.Timestamp, horizon_days: int, n_train: int,
                 step_days: int, min_history_days: int) -> CutoffPlan:
    """Validation at `as_of - horizon` (labels fully observed by as_of); training cutoffs end their label
    windows at or before the validation cutoff, `step_days` apart, the earliest at least `min_history_days`
    after the data start; at most `n_train` of them, the latest first (0: as many as the history allows).
    Cutoffs are midnights (UTC)."""
    h = pd.Timedelta(days=horizon_days)
    validation = (pd.Timestamp(as_of) - h).tz_convert("UTC").floor("D")
    earliest = pd.Timestamp(data_start).tz_convert("UTC").ceil("D") + pd.Timedelta(days=min_history_days)
    latest_train = validation - h
    fit = 0 if latest_train < earliest else (latest_train - earliest) // pd.Timedelta(days=step_days) + 1
    n = fit if n_train == 0 else min(n_train, fit)
    train = sorted(latest_train - pd.Timedelta(days=step_days * k) for k in range(n))
    if not train:
        need = horizon_days * 2 + min_history_days
        raise NotEnoughHistory(f"not enough history: training needs at least {need} days of events before "
                               f"{pd.Timestamp(as_of).date()} (horizon {horizon_days} for validation labels, "
                               f"{horizon_days} for training labels, {min_history_days} of history before the first "
                               f"training cutoff: the setting min_history_days); the store starts "
                               f"{pd.Timestamp(data_start).date()}")
    return CutoffPlan(tuple(train), validation, horizon_days)


def history_note(plan: CutoffPlan, data_start: pd.Timestamp, lookback_days: int) -> str | None:
    """What a short history leaves out, in one sentence (None when the first training cutoff sees a full lookback)."""
    days = (plan.train[0] - pd.Timestamp(data_start).tz_convert("UTC")) // pd.Timedelta(days=1)
    if days >= lookback_days:
        return None
    start = pd.Timestamp(data_start).tz_convert("UTC")
    return (f"short history: the first training cutoff ({plan.train[0].date()}) sees {days} days of events and the "
            f"validation cutoff {(plan.validation - start) // pd.Timedelta(days=1)} days; features over longer "
            f"windows (up to {lookback_days} days) count only what the store holds; {len(plan.train)} training "
            f"cutoff(s)")
