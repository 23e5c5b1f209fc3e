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
                 step_days: int, min_history_days: int = 90) -> CutoffPlan:
    """Validation at `as_of - horizon` (labels fully observed by as_of); training cutoffs end their label
    windows at or before the validation cutoff, `step_days` apart. Cutoffs are midnights (UTC)."""
    h = pd.Timedelta(days=horizon_days)
    validation = (pd.Timestamp(as_of) - h).tz_convert("UTC").floor("D")
    earliest = pd.Timestamp(data_start).tz_convert("UTC").ceil("D") + pd.Timedelta(days=min_history_days)
    latest_train = validation - h
    train = [latest_train - pd.Timedelta(days=step_days * k) for k in range(n_train)]
    train = sorted(c for c in train if c >= earliest)
    if not train:
        need = horizon_days * 2 + min_history_days
        raise NotEnoughHistory(f"not enough history: training needs at least {need} days of events before {as_of.date()} "
                         f"(horizon {horizon_days} for validation labels, {horizon_days} for training labels, "
                         f"{min_history_days} of history); the store starts {pd.Timestamp(data_start).date()}")
    return CutoffPlan(tuple(train), validation, horizon_days)
