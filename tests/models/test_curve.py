"""The churn-time curve candidates of issue #13 part 3: monotone in the horizon, ranking the right way."""

import numpy as np
import pandas as pd

from models.curve import (
    CURVE_HORIZONS,
    AftCurve,
    HorizonClassifiers,
    anchored_location,
    censored_at,
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


def test_censored_at_keeps_only_what_was_known_at_the_limit():
    X = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                      "cutoff": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01", "2024-03-01"], utc=True),
                      "next_activity_days": [10.0, 80.0, 60.0, np.nan], "observed_days": [120.0, 120.0, 89.0, 60.0]})
    out = censored_at(X, pd.Timestamp("2024-03-31", tz="UTC"))
    # watched until Mar 31: a and b 90 days (both seen by then), c 59 days (its purchase on day 60 not yet), d 30
    expected = X.assign(next_activity_days=[10.0, 80.0, np.nan, np.nan], observed_days=[90.0, 90.0, 59.0, 30.0])
    pd.testing.assert_frame_equal(out, expected)
    assert X["observed_days"].tolist() == [120.0, 120.0, 89.0, 60.0]  # the input is not changed
    # a purchase exactly at the limit was known then
    at = censored_at(X.iloc[[2]], pd.Timestamp("2024-04-01", tz="UTC"))
    assert at["next_activity_days"].tolist() == [60.0] and at["observed_days"].tolist() == [60.0]
    try:
        censored_at(X, pd.Timestamp("2024-02-15", tz="UTC"))
    except ValueError as e:
        assert "after" in str(e)
    else:
        raise AssertionError("a cutoff after the limit must be refused")


def test_the_evaluated_curve_never_learns_from_the_validation_window():
    """fit_curve: the curve whose metrics are reported is fitted on the waits known at the validation cutoff, so
    changing every wait that ends after it changes the served curve but not the evaluated one or its metrics."""
    from models.train import fit_curve

    rng = np.random.default_rng(3)
    n = 1200
    cutoffs = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"], utc=True)
    validation_cutoff = pd.Timestamp("2024-06-01", tz="UTC")
    as_of = validation_cutoff + pd.Timedelta(days=90)

    def rows(cutoff, ids):
        recency = rng.uniform(1, 120, len(ids))
        wait = rng.exponential(10 + recency)
        observed = (as_of - cutoff) / pd.Timedelta(days=1)
        return pd.DataFrame({"customer_id": ids, "cutoff": cutoff, "recency": recency, "noise": rng.random(len(ids)),
                             "next_activity_days": np.where(wait <= observed, wait, np.nan),
                             "observed_days": observed})

    ids = [f"c{i}" for i in range(n)]
    train = pd.concat([rows(c, ids) for c in cutoffs], ignore_index=True)
    validation = rows(validation_cutoff, ids)
    validation = validation.join(horizon_labels(validation, (30, 60, 90)))
    after = (train["cutoff"] + pd.to_timedelta(train["next_activity_days"], unit="D")) > validation_cutoff
    assert after.sum() > 50  # the data has waits that end in the validation window
    moved = train.assign(next_activity_days=train["next_activity_days"].mask(after, np.nan))  # never seen instead
    kw = {"seed": 1, "horizon_days": 90}
    served, evaluated, metrics = fit_curve(train, validation, ["recency", "noise"], **kw)
    served2, evaluated2, metrics2 = fit_curve(moved, validation, ["recency", "noise"], **kw)
    assert np.array_equal(evaluated.location(validation), evaluated2.location(validation)) and metrics == metrics2
    assert not np.array_equal(served.location(validation), served2.location(validation))
    assert set(metrics) == {30, 60, 90, "integrated_brier"}
    # the served curve is refitted on the training and validation rows with the evaluated curve's tree count
    assert served.best_iteration_ == evaluated.best_iteration_
