"""The churn-time curve candidates of issue #13 part 3: monotone in the horizon, ranking the right way."""

import numpy as np
import pandas as pd

from models.curve import (
    CURVE_HORIZONS,
    AftCurve,
    HorizonClassifiers,
    anchored_location,
    curve_columns,
    curve_metrics,
    horizon_labels,
    lognormal_curve,
    median_from_grid,
    next_purchase_errors,
    waiting_interval,
)


def _customers(n=1500, seed=4):
    """Customers whose days to the next purchase grow with their recency; censored after 200 days."""
    rng = np.random.default_rng(seed)
    recency = rng.uniform(1, 120, n)
    wait = rng.exponential(10 + recency)
    seen = wait <= 200
    X = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "recency": recency, "noise": rng.random(n),
                      "next_activity_days": np.where(seen, wait, np.nan), "observed_days": 200.0})
    return X.join(horizon_labels(X, CURVE_HORIZONS))


def test_both_curves_are_probabilities_monotone_in_the_horizon_and_rank_by_recency():
    X = _customers()
    train, test = X.iloc[:1000], X.iloc[1000:]
    for model in (HorizonClassifiers(["recency", "noise"], seed=1), AftCurve(["recency", "noise"], seed=1)):
        c = model.fit(train).curve(test)
        assert list(c.columns) == curve_columns() and c.index.equals(test.index)
        v = c.to_numpy()
        assert ((v >= 0) & (v <= 1)).all() and (np.diff(v, axis=1) <= 1e-12).all()  # never rises with h
        m = curve_metrics(c, test)
        assert all(m[h]["roc_auc"] > 0.6 for h in CURVE_HORIZONS), (type(model).__name__, m)
        assert 0 < m["integrated_brier"] < 0.25


def test_curve_metrics_weights_the_brier_scores_by_the_gaps_between_horizons():
    labels = pd.DataFrame({f"churned_{h}d": [1, 0] for h in (30, 90)})
    curve = pd.DataFrame({"p_no_purchase_30d": [1.0, 0.0], "p_no_purchase_90d": [0.5, 0.5]})
    m = curve_metrics(curve, labels, horizons=(30, 90))
    assert m[30]["brier"] == 0 and m[90]["brier"] == 0.25
    assert m["integrated_brier"] == (30 * 0 + 60 * 0.25) / 90


def test_the_anchored_curve_passes_through_the_horizon_probability_and_has_its_median_at_one_half():
    p = np.array([0.05, 0.5, 0.93])
    loc = anchored_location(p, 90)
    c = lognormal_curve(loc, (30, 90, 180))
    assert np.allclose(c["p_no_purchase_90d"], p) and (np.diff(c.to_numpy(), axis=1) < 0).all()
    assert np.isclose(loc[1], 90) and loc[0] < 90 < loc[2]
    assert np.allclose(lognormal_curve(loc, (1,), scale=1.2).shape, (3, 1))


def test_median_from_grid_interpolates_where_the_curve_crosses_one_half_and_is_inf_when_it_never_does():
    grid = np.array([10.0, 20.0, 40.0])
    p = np.array([[0.9, 0.7, 0.3], [0.4, 0.2, 0.1], [0.9, 0.8, 0.6]])
    assert np.allclose(median_from_grid(p, grid)[:2], [30.0, 10.0]) and np.isinf(median_from_grid(p, grid)[2])


def test_next_purchase_errors_count_a_censored_customer_only_for_a_prediction_before_the_data_end():
    lower, upper = np.array([10.0, 50.0, 50.0]), np.array([10.0, np.inf, np.inf])
    e = next_purchase_errors(np.array([14.0, 20.0, np.inf]), lower, upper, cap_days=365)
    assert e["mae_seen"] == 4 and e["n_seen"] == 1 and e["n"] == 3
    assert e["interval_mae"] == (4 + 30 + 0) / 3  # 20 days is 30 before the known 50; 365 is after it: no cost


def test_the_aft_curve_survives_its_artifact_round_trip_and_reads_censored_rows_as_waiting_longer():
    X = _customers(800, seed=7)
    lower, upper = waiting_interval(X)
    censored = X["next_activity_days"].isna().to_numpy()
    assert (lower[censored] == 200).all() and np.isinf(upper[censored]).all()
    assert (lower[~censored] == upper[~censored]).all()
    model = AftCurve(["recency", "noise"], seed=2).fit(X)
    raw, meta = model.to_artifact()
    again = AftCurve.from_artifact(raw, meta)
    pd.testing.assert_frame_equal(again.curve(X), model.curve(X))
    assert meta["trees"] == model.best_iteration_ + 1 == again.booster_.num_boosted_rounds()
    # training watched every row for 200 days: the 30/60/90/180-day curve is served whole; a history watched for
    # 70 days only serves 30 and 60 (90 and 180 would be extrapolation)
    assert again.observed_days_ == 200 and again.served_horizons() == CURVE_HORIZONS
    short = AftCurve(["recency", "noise"], seed=2).fit(X.assign(observed_days=np.minimum(X["observed_days"], 70.0)))
    assert short.served_horizons() == (30, 60)


def test_the_aft_curve_fitted_with_a_fixed_tree_count_uses_every_row_and_that_many_trees():
    """The cross-fitted stack of issue #13 refits the curve on each fold with the main fit's tree count."""
    X = _customers(600, seed=9)
    fixed = AftCurve(["recency", "noise"], seed=2).fit(X, rounds=7)
    assert fixed.best_iteration_ == 6 and fixed.booster_.num_boosted_rounds() == 7
    again = AftCurve(["recency", "noise"], seed=2).fit(X, rounds=7)
    assert np.array_equal(again.location(X), fixed.location(X))  # every row, no hold-out drawn: deterministic
    assert not np.array_equal(AftCurve(["recency", "noise"], seed=2).fit(X.iloc[:500], rounds=7).location(X),
                              fixed.location(X))
