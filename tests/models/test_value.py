"""The expected-spend models of issue #13 part 4 and their metrics."""

import numpy as np
import pandas as pd
import pytest

from models.value import GammaGammaBTYD, SpendRegressor, value_metrics


def test_value_metrics_by_hand():
    y = np.array([0.0, 10.0, 0.0, 30.0, 0, 0, 0, 0, 0, 60.0])
    p = np.array([1.0, 9.0, 2.0, 20.0, 0, 0, 0, 0, 0, 50.0])
    m = value_metrics(y, p)
    assert m["mae"] == pytest.approx((1 + 1 + 2 + 10 + 10) / 10)
    assert m["top_decile_share"] == pytest.approx(60 / 100)  # the top 10 % (one customer) by prediction
    assert m["mean_realised"] == pytest.approx(10.0) and m["n"] == 10 and 0.5 < m["spearman"] <= 1


def _histories(n=600, seed=3):
    """Buyers with a repeat frequency, a span, an age and a mean basket; spend in the next 90 days grows with
    frequency x basket."""
    rng = np.random.default_rng(seed)
    freq = rng.poisson(4, n).astype(float)
    age = rng.uniform(100, 400, n)
    span = np.minimum(age, rng.uniform(0, 1, n) * age)
    basket = rng.gamma(4, 10, n)
    X = pd.DataFrame({"repeat_purchase_days": freq, "purchase_span_days": np.where(freq > 0, span, 0.0),
                      "days_since_first_purchase": age, "avg_basket_365d": basket},
                     index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"))
    future = rng.poisson(freq / age * 90) * basket
    return X, future


def test_gamma_gamma_times_pareto_nbd_ranks_frequent_big_baskets_first_and_never_buyers_at_zero():
    X, _ = _histories()
    X.loc["never"] = [np.nan, np.nan, np.nan, np.nan]
    m = GammaGammaBTYD(90, sample_customers=None, seed=1).fit(X)
    s = m.expected_spend(X)
    assert s.index.equals(X.index) and s["never"] == 0 and (s >= 0).all()
    probe = pd.DataFrame({"repeat_purchase_days": [8.0, 8.0, 1.0], "purchase_span_days": [190.0, 190.0, 190.0],
                          "days_since_first_purchase": [200.0] * 3, "avg_basket_365d": [80.0, 20.0, 80.0]},
                         index=["big", "small", "rare"])
    e = m.expected_spend(probe)
    assert e["big"] > e["small"] and e["big"] > e["rare"]


def test_the_spend_regressor_learns_the_horizons_spend_from_features():
    X, future = _histories()
    frame = X.reset_index()
    fitted = SpendRegressor(["repeat_purchase_days", "days_since_first_purchase", "avg_basket_365d"], seed=1).fit(
        frame, future)
    p = fitted.expected_spend(frame)
    assert p.index.equals(frame.index) and value_metrics(future, p.to_numpy())["spearman"] > 0.3
