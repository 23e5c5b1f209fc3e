import numpy as np
import pandas as pd
import pytest

from expectations.scores import SCORE_COLUMN_NAMES
from features.customer import FEATURE_NAMES
from features.definitions import BY_NAME
from features.snapshots import stacked_snapshots
from models.churn_model import ChurnModel
from models.reasons import REASON_CATEGORY, peer_share, points_to_churn, reason_text, top_reasons
from models.scoring import ScoringPolicy, contributions, expected_value, risk_tier, score_customers
from simulator.generate import SimulationConfig, simulate


def policy(**kw) -> ScoringPolicy:
    """The scoring policy with the values these tests assume, each overridable."""
    return ScoringPolicy(**{"horizon_days": 90, "tier_high": 0.7, "tier_medium": 0.4, "exact_reasons_top_n": 50,
                            "reasons": True, "explain_low_risk": False, "currency": "GBP", **kw})


@pytest.fixture(scope="module")
def fitted():
    events, _ = next(iter(simulate(SimulationConfig(customers=1500, days=500, seed=4, chunk_customers=1500))))
    cut = events["event_time"].min().ceil("D") + pd.Timedelta(days=300)
    snap = stacked_snapshots(events, [cut - pd.Timedelta(days=90), cut], 90, 365)
    train, now = snap[snap["cutoff"] < cut], snap[snap["cutoff"] == cut]
    model = ChurnModel(FEATURE_NAMES, seed=0, n_estimators=80).fit(train, train["churned"], train, train["churned"])
    feats = now.set_index("customer_id")[FEATURE_NAMES]
    return model.model_, feats, cut


def test_reason_contributions_plus_bias_give_the_model_log_odds(fitted):
    model, feats, _ = fitted
    booster = model.get_booster()
    import xgboost as xgb

    margin = booster.predict(xgb.DMatrix(feats, feature_names=FEATURE_NAMES), output_margin=True)
    exact = np.arange(len(feats)) < len(feats) // 2  # half exact, half approximate: both must add up
    contrib = contributions(booster, feats, exact)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), margin, rtol=1e-4, atol=1e-4)


def test_scored_frame_follows_the_contract_and_reasons_match_contributions(fitted):
    model, feats, cut = fitted
    meta = {"model_name": "churn", "model_version": "3", "run_id": "r1"}
    s = score_customers(model, feats, cut, policy(exact_reasons_top_n=100, explain_low_risk=True), meta,
                        pd.Timestamp("2025-01-01T00:00Z"))
    assert list(s.columns) == SCORE_COLUMN_NAMES
    assert len(s) == len(feats) and s["customer_id"].is_unique
    assert s["risk_rank"].tolist() == list(range(1, len(s) + 1))
    assert s["churn_probability"].is_monotonic_decreasing
    assert s["churn_probability"].between(0, 1).all()
    np.testing.assert_allclose(s["value_at_risk"], s["churn_probability"] * s["expected_value"])
    assert (s["reasons_method"] == "exact").sum() == 100
    assert s.loc[s["reasons_method"] == "exact", "value_at_risk"].min() >= \
        s.loc[s["reasons_method"] == "approximate", "value_at_risk"].max()
    # each reason's contribution is that feature's contribution for that customer, in decreasing order, and the
    # first reason is the strongest feature whose value points towards churn (against all customers scored)
    contrib = contributions(model.get_booster(), feats.loc[s["customer_id"]],
                            (s["reasons_method"] == "exact").to_numpy())
    recency, gap = feats["days_since_last_purchase"], feats["purchase_gap_mean_days"]
    for i, row in s.head(50).iterrows():
        c = contrib.loc[row["customer_id"]].drop("_bias")
        if row["reason_1_feature"] is None:
            continue
        assert c[row["reason_1_feature"]] == pytest.approx(row["reason_1_contribution"])
        stronger = c[c > row["reason_1_contribution"]].index
        for f in stronger:  # every feature pushing harder was left out because its value does not point to churn
            v = feats.loc[[row["customer_id"]], f].to_numpy()
            share = peer_share(v, feats[f].to_numpy(), BY_NAME[f].churn_when)
            at = [row["customer_id"]]
            assert not points_to_churn(f, v, share, recency.loc[at].to_numpy(), gap.loc[at].to_numpy())[0], f
        if row["reason_2_feature"] is not None:
            assert row["reason_1_contribution"] >= row["reason_2_contribution"] > 0
            assert row["reason_2_value"] == pytest.approx(feats.loc[row["customer_id"], row["reason_2_feature"]],
                                                          nan_ok=True)


def test_low_risk_customers_outside_the_exact_budget_get_no_reasons_unless_asked(fitted):
    model, feats, cut = fitted
    meta = {"model_name": "churn", "model_version": "3", "run_id": "r1"}
    kw = dict(as_of=cut, model_meta=meta, scored_at=pd.Timestamp("2025-01-01T00:00Z"))
    s = score_customers(model, feats, policy=policy(exact_reasons_top_n=50), **kw)
    by = s.groupby(["risk_tier", "reasons_method"]).size()
    assert (s["reasons_method"] == "exact").sum() == 50
    low = s[(s["risk_tier"] == "low") & (s["reasons_method"] != "exact")]
    assert len(low) > 0 and (low["reasons_method"] == "none").all(), by
    assert low[["reason_1_feature", "reason_1_text"]].isna().all().all()
    at_risk = s[(s["risk_tier"] != "low") & (s["reasons_method"] != "exact")]
    assert len(at_risk) > 0 and (at_risk["reasons_method"] == "approximate").all()
    assert at_risk["reason_1_feature"].notna().mean() > 0.9  # at-risk customers nearly always have a reason
    everyone = score_customers(model, feats, policy=policy(exact_reasons_top_n=50, explain_low_risk=True), **kw)
    assert set(everyone["reasons_method"]) == {"exact", "approximate"}
    same = everyone.set_index("customer_id").loc[at_risk["customer_id"], "reason_1_text"]
    assert same.tolist() == at_risk["reason_1_text"].tolist()


def test_expected_value_and_tiers():
    f = pd.DataFrame({"spend_365d": [365.0, 100.0, 0.0], "tenure_days": [1000.0, 10.0, 50.0]})
    assert expected_value(f, 90).tolist() == pytest.approx([90.0, 100.0 / 30 * 90, 0.0])
    assert risk_tier(pd.Series([0.9, 0.7, 0.5, 0.1]), 0.7, 0.4).tolist() == ["high", "high", "medium", "low"]


def test_top_reasons_ignore_features_that_lower_the_risk():
    contrib = pd.DataFrame({"days_since_last_purchase": [2.0, -1.0], "complaints_90d": [0.5, -0.2],
                            "visits_30d": [-3.0, -0.1]}, index=["a", "b"])
    feats = pd.DataFrame({"days_since_last_purchase": [74.0, 3.0], "complaints_90d": [2.0, 0.0],
                          "visits_30d": [0.0, 5.0], "overdue_ratio": [3.0, 0.2],
                          "purchase_gap_mean_days": [25.0, 15.0]}, index=["a", "b"])
    r = top_reasons(contrib, feats, 3, currency="GBP")
    assert r.loc["a", ["reason_1_feature", "reason_2_feature", "reason_3_feature"]].tolist() == \
        ["days_since_last_purchase", "complaints_90d", None]
    assert r.loc["a", "reason_1_text"] == "no purchase for 74 days, 3.0x their usual 25 days between purchases"
    assert r.loc["a", "reason_2_text"] == "2 complaints in the last 90 days (more than 50 % of active customers)"
    assert r.loc["b"].isna().all()


@pytest.mark.parametrize("feature", FEATURE_NAMES)
def test_every_feature_has_a_sentence_and_a_category(feature):
    row = {f: 1.5 for f in FEATURE_NAMES} | {"peer_share": 0.7}
    assert reason_text(feature, row, "GBP") and not reason_text(feature, row, "GBP").startswith(feature)
    assert reason_text(feature, {**row, feature: float("nan")}, "GBP")
    assert feature in REASON_CATEGORY


def test_the_kept_model_ends_at_the_best_iteration_so_booster_and_wrapper_agree():
    """Early stopping leaves extra trees in the booster; scoring calls Booster.predict, which would use them."""
    import xgboost as xgb

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(3000, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    y = pd.Series((X.iloc[:, 0] + rng.normal(scale=2.0, size=len(X)) > 0).astype(int))
    m = ChurnModel(FEATURE_NAMES, seed=0, learning_rate=0.5, early_stopping_rounds=10)
    m.fit(X[:2000], y[:2000], X[2000:], y[2000:])
    booster = m.model_.get_booster()
    assert m.best_iteration_ < 100  # it did stop early, so extra trees existed
    assert booster.num_boosted_rounds() == m.best_iteration_ + 1
    direct = booster.predict(xgb.DMatrix(X, feature_names=FEATURE_NAMES))
    np.testing.assert_allclose(direct, m.churn_probability(X).to_numpy(), rtol=0, atol=1e-7)


def test_tier_summary_lists_every_tier_and_a_model_needing_unbuilt_features_is_refused():
    from models.scoring import IncompatibleModel, require_buildable, tier_summary

    s = pd.DataFrame({"risk_tier": ["high", "high", "low"], "value_at_risk": [1.0, 2.0, 0.5]})
    assert tier_summary(s) == {"high": {"customers": 2, "value_at_risk": 3.0},
                               "medium": {"customers": 0, "value_at_risk": 0.0},
                               "low": {"customers": 1, "value_at_risk": 0.5}}

    class Booster:
        feature_names = ["days_since_last_event", "foo"]

    class Model:
        def get_booster(self):
            return Booster()

    with pytest.raises(IncompatibleModel, match=r"expects features \['foo'\]"):
        require_buildable(Model(), "churn v1", FEATURE_NAMES)


def test_curve_columns_cover_any_median_a_date_only_within_two_years_and_none_without_a_curve():
    """A customer all but gone can have a median of centuries: the date is empty, never an overflow (found by the
    1M bench); without a curve model every curve column is empty."""
    from models.scoring import curve_columns_of

    class Fixed:  # the curve interface scoring uses: features, scale, location(), served_horizons()
        features, scale = ["x"], 1.2

        def location(self, X):
            return X["x"].to_numpy()

        def served_horizons(self):
            return (30, 60, 90, 180)

    feats = pd.DataFrame({"x": [10.0, 729.0, 731.0, 1e6, 1e300]}, index=pd.Index(list("abcde"), name="customer_id"))
    as_of = pd.Timestamp("2024-12-30T12:00Z")
    c = curve_columns_of(Fixed(), feats, as_of)
    assert c["expected_next_purchase_date"].tolist()[:2] == [pd.Timestamp("2025-01-09").date(),
                                                            pd.Timestamp("2026-12-29").date()]
    assert c["expected_next_purchase_date"].iloc[2:].isna().all()
    assert (c["p_no_purchase_30d"] >= c["p_no_purchase_180d"]).all() and c["p_no_purchase_180d"].iloc[-1] > 0.99
    Fixed.served_horizons = lambda self: (30, 60)  # training watched 60-odd days: no 90 or 180 columns
    short = curve_columns_of(Fixed(), feats, as_of)
    assert short[["p_no_purchase_90d", "p_no_purchase_180d"]].isna().all().all()
    assert short[["p_no_purchase_30d", "p_no_purchase_60d"]].notna().all().all()
    empty = curve_columns_of(None, feats, as_of)
    assert empty.index.equals(feats.index) and empty.isna().all().all()
