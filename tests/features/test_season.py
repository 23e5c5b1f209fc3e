"""The cutoff's position in the year as model inputs (issue #13): used only when the training cutoffs span a year."""

import numpy as np
import pandas as pd

from features.season import MIN_SPAN_DAYS, SEASON_FEATURES, model_features, season_values, with_season, without_season


def test_the_season_inputs_are_the_day_of_the_year_on_the_unit_circle():
    v = season_values(pd.to_datetime(["2024-01-01", "2024-07-02", "2025-01-01"], utc=True))
    angle = 2 * np.pi * np.array([1, 184, 1]) / 365.25
    assert np.allclose(v[SEASON_FEATURES[0]], np.sin(angle)) and np.allclose(v[SEASON_FEATURES[1]], np.cos(angle))
    assert v.iloc[0].tolist() == v.iloc[2].tolist()  # the same day of two years: the same inputs
    assert v.loc[1, "cutoff_year_cos"] < -0.99  # early July is the far side of the circle from New Year


def test_snapshot_rows_get_their_cutoffs_inputs_and_scoring_rows_the_as_of_days():
    frame = pd.DataFrame({"cutoff": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-09-01"], utc=True)})
    rows = with_season(frame)
    assert rows[SEASON_FEATURES[0]].nunique() == 2 and rows.iloc[0].equals(rows.iloc[1])
    scored = with_season(pd.DataFrame({"x": [1.0, 2.0]}), pd.Timestamp("2024-09-01", tz="UTC"))
    assert scored[list(SEASON_FEATURES)].to_numpy().tolist() == [rows.iloc[2][list(SEASON_FEATURES)].tolist()] * 2


def test_the_inputs_are_used_only_when_the_training_cutoffs_span_a_year():
    features = ["days_since_last_purchase", *SEASON_FEATURES]
    start = pd.Timestamp("2023-01-01", tz="UTC")
    short = [start + pd.Timedelta(days=d) for d in (0, 30, 60, 90)]
    year = [start + pd.Timedelta(days=d) for d in range(0, MIN_SPAN_DAYS + 1, 30)] + [start + pd.Timedelta(days=365)]
    assert model_features(features, short) == ["days_since_last_purchase"]
    assert model_features(features, year) == features
    assert model_features(["days_since_last_purchase"], year) == ["days_since_last_purchase"]  # chosen away: stays away
    assert model_features(features, []) == ["days_since_last_purchase"]
    assert without_season(features) == ["days_since_last_purchase"]
