"""The cutoff's position in the year as two model inputs (issue #13).

A churn label counts the purchases of the horizon after the cutoff, so the season of that window moves every
customer's odds (a quarter that holds the holidays has fewer churners). Trees can learn that only from training
cutoffs that cover every season: the inputs are used when the training cutoffs span a year or more (e.g.
`n_train_cutoffs = 0` on two years of history) and left out otherwise, where they would only tell the cutoffs
apart. They are the same for every customer of a cutoff: never a reason code, never checked for drift.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

SEASON_FEATURES = ("cutoff_year_sin", "cutoff_year_cos")
SEASON_MEANING = {"cutoff_year_sin": ("sine of the cutoff's day of the year (2 pi x day / 365.25)", "-1..1"),
                  "cutoff_year_cos": ("cosine of the cutoff's day of the year (2 pi x day / 365.25)", "-1..1")}
MIN_SPAN_DAYS = 365  # the training cutoffs must span this much for the season inputs to be used
DAYS_PER_YEAR = 365.25


def season_values(cutoffs) -> pd.DataFrame:
    """SEASON_FEATURES of each cutoff (a sequence of timestamps; UTC day of the year), one row per cutoff."""
    day = pd.DatetimeIndex(pd.to_datetime(pd.Series(cutoffs), utc=True)).dayofyear.to_numpy(dtype="float64")
    angle = 2 * np.pi * day / DAYS_PER_YEAR
    return pd.DataFrame({SEASON_FEATURES[0]: np.sin(angle), SEASON_FEATURES[1]: np.cos(angle)})


def with_season(frame: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """`frame` with SEASON_FEATURES: of each row's `cutoff` (snapshots), or of `as_of` for every row (scoring)."""
    cutoffs = [as_of] * len(frame) if as_of is not None else frame["cutoff"]
    values = season_values(cutoffs)
    return frame.assign(**{c: values[c].to_numpy() for c in SEASON_FEATURES})


def span_days(train_cutoffs: Iterable) -> float:
    """Days from the earliest to the latest training cutoff."""
    cutoffs = pd.to_datetime(pd.Series(list(train_cutoffs)), utc=True)
    return float((cutoffs.max() - cutoffs.min()) / pd.Timedelta(days=1)) if len(cutoffs) else 0.0


def model_features(features: Iterable[str], train_cutoffs: Iterable) -> list[str]:
    """The model's inputs: `features` without SEASON_FEATURES unless the training cutoffs span MIN_SPAN_DAYS."""
    features = list(features)
    if span_days(train_cutoffs) >= MIN_SPAN_DAYS:
        return features
    return [f for f in features if f not in SEASON_FEATURES]


def without_season(names: Iterable[str]) -> list[str]:
    """`names` less SEASON_FEATURES: what reason codes and drift checks read."""
    return [n for n in names if n not in SEASON_FEATURES]
