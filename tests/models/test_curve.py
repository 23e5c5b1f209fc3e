"""The churn-time curve candidates of issue #13 part 3: monotone in the horizon, ranking the right way."""

import numpy as np
import pandas as pd

from models.curve import CURVE_HORIZONS, AftCurve, HorizonClassifiers, curve_columns, curve_metrics


def _customers(n=1500, seed=4):
    """Customers whose days to the next purchase grow with their recency; censored after 200 days."""
    rng = np.random.default_rng(seed)
    recency = rng.uniform(1, 120, n)
    wait = rng.exponential(10 + recency)
    seen = wait <= 200
    X = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "recency": recency, "noise": rng.random(n),
                      "next_purchase_lower_days": np.where(seen, wait, 200.0),
                      "next_purchase_upper_days": np.where(seen, wait, np.inf)})
    for h in CURVE_HORIZONS:
        X[f"churned_{h}d"] = (~(seen & (wait <= h))).astype("int64")
    return X


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
