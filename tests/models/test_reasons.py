"""Reason sentences and when a feature is a reason: its contribution raises the score AND its value points
towards churn against its reference (the customer's own past, or the other active customers)."""

import math

import numpy as np
import pandas as pd
import pytest

from features.definitions import BY_NAME, DEFINITIONS, FEATURE_NAMES, OWN, PEERS
from models.reasons import REASON_CATEGORY, peer_share, reason_text, top_reasons
from models.winback import DEFAULT_ACTIONS

NAN = math.nan

# (feature, value, share of active customers on the safe side of it, sentence); mean gap 40 days, overdue 4.4x
SENTENCES = [
    ("days_since_last_event", 175.2, 0.834, "no activity at all for 175 days (83 % of active customers were active "
                                            "more recently)"),
    ("days_since_last_event", 1.0, 0.5, "no activity at all for 1 day (50 % of active customers were active more "
                                        "recently)"),
    ("days_since_last_visit", 120.0, 0.9, "no visit for 120 days (90 % of active customers visited more recently)"),
    ("days_since_last_visit", NAN, NAN, "has never visited"),
    ("days_since_last_purchase", 175.2, 0.9, "no purchase for 175 days, 4.4x their usual 40 days between purchases"),
    ("days_since_last_purchase", NAN, NAN, "has never bought"),
    ("tenure_days", 45.0, 0.8, "customer for only 45 days (80 % of active customers have been customers longer)"),
    ("tenure_days", 200.0, 0.6, "customer for 200 days (60 % of active customers have been customers longer)"),
    ("visits_30d", 0.0, 0.55, "no visits in the last 30 days (55 % of active customers visited more often)"),
    ("visits_90d", 1.0, 0.7, "1 visit in the last 90 days (70 % of active customers visited more often)"),
    ("visits_365d", 3.0, 0.9, "3 visits in the last 365 days (90 % of active customers visited more often)"),
    ("purchases_30d", 1.0, 0.6, "1 purchase in the last 30 days (60 % of active customers bought more often)"),
    ("purchases_90d", 2.0, 0.75, "2 purchases in the last 90 days (75 % of active customers bought more often)"),
    ("purchases_365d", 4.0, 0.8, "4 purchases in the last 365 days (80 % of active customers bought more often)"),
    ("purchases_total", 3.0, 0.75, "3 purchases in total (75 % of active customers bought more often)"),
    ("spend_30d", 12.5, 0.7, "spent GBP 12.50 in the last 30 days (70 % of active customers spent more)"),
    ("spend_90d", 45.204, 0.8, "spent GBP 45.20 in the last 90 days (80 % of active customers spent more)"),
    ("spend_365d", 1234.56, 0.6, "spent GBP 1,235 in the last 365 days (60 % of active customers spent more)"),
    ("avg_basket_365d", 11.2, 0.8, "average basket GBP 11.20 in the last year (80 % of active customers spend more "
                                   "per purchase)"),
    ("purchase_gap_mean_days", 95.4, 0.8, "buys only every 95 days on average (80 % of active customers buy more "
                                          "often)"),
    ("purchase_gap_std_days", 60.0, 0.85, "irregular buying: gaps vary by 60 days (85 % of active customers buy "
                                          "more regularly)"),
    ("overdue_ratio", 4.38, NAN, "no purchase for 175 days, 4.4x their usual 40 days between purchases"),
    ("purchase_trend_90d", -0.4286, NAN, "purchases in the last 90 days 60 % below their own previous 90 days"),
    ("purchase_trend_90d", -1.0, NAN, "no purchases in the last 90 days, after some in the previous 90 days"),
    ("spend_trend_90d", -0.4286, NAN, "spend in the last 90 days 60 % below their own previous 90 days"),
    ("spend_trend_90d", 0.2, NAN, "spend in the last 90 days 50 % above their own previous 90 days"),
    ("visit_trend_90d", -0.6, NAN, "visits in the last 90 days 75 % below their own previous 90 days"),
    ("visit_trend_90d", -1.0, NAN, "no visits in the last 90 days, after some in the previous 90 days"),
    ("returns_365d", 3.0, 0.95, "3 returns in the last year (more than 95 % of active customers)"),
    ("return_rate_365d", 0.259, 0.9, "returned 26 % of purchases in the last year (more than 90 % of active "
                                     "customers)"),
    ("complaints_90d", 3.0, 0.99, "3 complaints in the last 90 days (more than 99 % of active customers)"),
    ("complaints_90d", 1.0, 0.97, "1 complaint in the last 90 days (more than 97 % of active customers)"),
    ("complaints_365d", 4.0, 0.98, "4 complaints in the last 365 days (more than 98 % of active customers)"),
    ("complaint_share_365d", 0.2, 0.95, "complaints are 20 % of their contacts this year (more than for 95 % of "
                                        "active customers)"),
    ("discount_share_365d", 0.6, 0.85, "60 % of purchases made with a discount (more than for 85 % of active "
                                       "customers)"),
    ("not_a_feature", 2.5, NAN, "not_a_feature = 2.5"),
]


@pytest.mark.parametrize("feature, value, share, expected", SENTENCES)
def test_each_sentence_says_the_value_and_what_it_is_compared_with(feature, value, share, expected):
    row = {"purchase_gap_mean_days": 40.0, "overdue_ratio": 4.38, feature: value, "peer_share": share}
    assert reason_text(feature, row, "GBP") == expected


def test_every_feature_has_its_sentences_written_out_above():
    assert {f for f, *_ in SENTENCES} >= set(FEATURE_NAMES)


def test_money_carries_the_currency_and_is_rounded():
    row = {"avg_basket_365d": 11880.844, "peer_share": 0.6}
    assert reason_text("avg_basket_365d", row, "EUR").startswith("average basket EUR 11,881 in the last year")


def test_every_record_declares_a_direction_and_a_reference():
    for f in DEFINITIONS:
        assert f.churn_when in ("higher", "lower") and f.reference in (PEERS, OWN), f.name
    assert {f.name for f in DEFINITIONS if f.reference == OWN} == {
        "overdue_ratio", "purchase_trend_90d", "spend_trend_90d", "visit_trend_90d"}


def test_peer_share_counts_the_customers_strictly_on_the_safe_side():
    peers = np.array([0.0, 0.0, 1.0, 2.0, 5.0, np.nan])
    # lower values point towards churn (e.g. visits): share of peers with strictly more
    np.testing.assert_allclose(peer_share(np.array([0.0, 2.0, 9.0, np.nan]), peers, "lower"), [0.6, 0.2, 0.0, np.nan])
    # higher values point towards churn (e.g. complaints): share of peers with strictly less
    np.testing.assert_allclose(peer_share(np.array([0.0, 2.0, 9.0]), peers, "higher"), [0.0, 0.6, 1.0])


def peers_frame(n: int = 100) -> pd.DataFrame:
    """A population of active customers: baskets 1..100, spend 90d 0..99, 30-day buyers, no complaints mostly."""
    i = np.arange(n, dtype=float)
    return pd.DataFrame({
        "avg_basket_365d": i + 1, "spend_90d": i, "spend_trend_90d": np.linspace(-0.5, 0.5, n),
        "days_since_last_purchase": np.full(n, 30.0), "overdue_ratio": np.full(n, 1.0),
        "purchase_gap_mean_days": np.full(n, 30.0), "complaints_90d": (i >= 95).astype(float),
    }, index=[f"p{k}" for k in range(n)])


def reasons_for(customer: dict, contributions: dict, peers: pd.DataFrame | None = None) -> pd.Series:
    peers = peers_frame() if peers is None else peers
    features = pd.DataFrame([customer], index=["x"]).reindex(columns=peers.columns)
    contrib = pd.DataFrame([contributions], index=["x"])
    everyone = pd.concat([peers, features])
    return top_reasons(contrib, features.reindex(columns=contrib.columns.union(peers.columns)), 3,
                       currency="GBP", peers=everyone).loc["x"]


def test_a_basket_far_above_the_median_is_never_a_small_basket_reason():
    """Issue #14: "small baskets: 11880.84 on average" for a customer far above the median basket."""
    big = {"avg_basket_365d": 11880.84, "days_since_last_purchase": 20.0, "spend_90d": 30.0}
    r = reasons_for(big, {"avg_basket_365d": 0.8, "spend_90d": 0.1, "days_since_last_purchase": -0.2})
    assert r["reason_1_feature"] == "spend_90d" and r["reason_2_feature"] is None
    small = reasons_for({**big, "avg_basket_365d": 5.0}, {"avg_basket_365d": 0.8, "spend_90d": 0.1,
                                                         "days_since_last_purchase": -0.2})
    assert small["reason_1_feature"] == "avg_basket_365d"
    assert small["reason_1_text"] == ("average basket GBP 5.00 in the last year (94 % of active customers spend "
                                      "more per purchase)")


def test_a_customer_long_without_a_purchase_gets_no_spend_reason():
    """Issue #14: a customer 175 days without a purchase got a spend reason; no spend in 90 days is the lapse."""
    lapsed = {"days_since_last_purchase": 175.0, "overdue_ratio": 175 / 30, "purchase_gap_mean_days": 30.0,
              "spend_90d": 0.0, "spend_trend_90d": -1.0, "avg_basket_365d": 40.0}
    r = reasons_for(lapsed, {"spend_90d": 1.5, "spend_trend_90d": 1.2, "days_since_last_purchase": 0.9,
                             "overdue_ratio": 0.3, "avg_basket_365d": 0.1})
    given = [r[f"reason_{i}_feature"] for i in (1, 2, 3)]
    assert given == ["days_since_last_purchase", "avg_basket_365d", None]  # one reason for the lapse, no spend
    assert r["reason_1_text"] == "no purchase for 175 days, 5.8x their usual 30 days between purchases"


def test_a_reason_needs_both_a_positive_contribution_and_a_value_pointing_towards_churn():
    growing = {"spend_trend_90d": 0.3, "days_since_last_purchase": 10.0, "spend_90d": 80.0, "complaints_90d": 0.0}
    r = reasons_for(growing, {"spend_trend_90d": 0.9, "spend_90d": 0.5, "complaints_90d": 0.4})
    assert r.isna().all()  # spend rising, spend above most, no complaint: no reason, whatever the contributions
    falling = {**growing, "spend_trend_90d": -0.4286, "spend_90d": 10.0, "complaints_90d": 3.0}
    r = reasons_for(falling, {"spend_trend_90d": 0.9, "spend_90d": -0.5, "complaints_90d": 0.4})
    assert [r["reason_1_feature"], r["reason_2_feature"], r["reason_3_feature"]] == \
        ["spend_trend_90d", "complaints_90d", None]  # spend_90d points towards churn but lowers the score
    assert r["reason_1_text"] == "spend in the last 90 days 60 % below their own previous 90 days"
    assert r["reason_2_text"] == "3 complaints in the last 90 days (more than 99 % of active customers)"


def test_one_reason_per_fact_the_strongest():
    late = {"days_since_last_purchase": 90.0, "overdue_ratio": 3.0, "purchase_gap_mean_days": 30.0}
    peers = peers_frame().assign(days_since_last_purchase=np.arange(100.0))
    r = reasons_for(late, {"days_since_last_purchase": 0.4, "overdue_ratio": 0.7}, peers)
    assert r["reason_1_feature"] == "overdue_ratio" and r["reason_2_feature"] is None


def test_categories_are_unchanged_and_each_has_a_winback_action():
    assert REASON_CATEGORY == {
        "days_since_last_purchase": "overdue", "overdue_ratio": "overdue", "days_since_last_event": "overdue",
        # how often someone buys is the purchase family (an infrequent buyer who bought last week is not late)
        "purchase_gap_mean_days": "spend_falling", "purchase_gap_std_days": "spend_falling",
        "days_since_last_visit": "disengaged", "visits_30d": "disengaged", "visits_90d": "disengaged",
        "visits_365d": "disengaged", "visit_trend_90d": "disengaged", "tenure_days": "disengaged",
        "purchases_30d": "spend_falling", "purchases_90d": "spend_falling", "purchases_365d": "spend_falling",
        "purchases_total": "spend_falling", "spend_30d": "spend_falling", "spend_90d": "spend_falling",
        "spend_365d": "spend_falling", "avg_basket_365d": "spend_falling", "purchase_trend_90d": "spend_falling",
        "spend_trend_90d": "spend_falling",
        "complaints_90d": "complaints", "complaints_365d": "complaints", "complaint_share_365d": "complaints",
        "returns_365d": "complaints", "return_rate_365d": "complaints",
        "discount_share_365d": "price_sensitive",
    }
    assert list(REASON_CATEGORY) == [f.name for f in DEFINITIONS]
    assert set(REASON_CATEGORY.values()) <= set(DEFAULT_ACTIONS)
    assert BY_NAME["avg_basket_365d"].when_missing is None  # "no basket" only restates the lapse


def test_a_buying_rhythm_of_several_orders_on_one_day_is_not_a_reference():
    """Two orders minutes apart make a mean gap of 0 days: "19397.6x their usual 0 days" says nothing."""
    late = {"days_since_last_purchase": 67.0, "overdue_ratio": 19397.6, "purchase_gap_mean_days": 0.0035}
    peers = peers_frame().assign(days_since_last_purchase=np.arange(100.0))
    r = reasons_for(late, {"overdue_ratio": 0.9, "days_since_last_purchase": 0.4}, peers)
    assert r["reason_1_feature"] == "days_since_last_purchase" and r["reason_2_feature"] is None
    assert r["reason_1_text"] == "no purchase for 67 days (66 % of active customers bought more recently)"
