"""Reason sentences generated from the feature records read exactly as the hand-written wording did."""

import math

import pytest

from features.definitions import DEFINITIONS, FEATURE_NAMES
from models.reasons import REASON_CATEGORY, reason_text
from models.winback import DEFAULT_ACTIONS

NAN = math.nan

# (feature, value, mean purchase gap, overdue ratio, sentence), the sentences as the code before the records wrote them
SENTENCES = [
    ("days_since_last_event", NAN, 40.0, 1.2, "days_since_last_event unknown"),
    ("days_since_last_event", 0.256, 40.0, 1.2, "no activity at all for 0 days"),
    ("days_since_last_event", 173.6, 40.0, 1.2, "no activity at all for 174 days"),
    ("days_since_last_event", -0.5, 40.0, 1.2, "no activity at all for -0 days"),
    ("days_since_last_visit", NAN, 40.0, 1.2, "has never visited"),
    ("days_since_last_visit", 0.256, 40.0, 1.2, "no visit for 0 days"),
    ("days_since_last_visit", 173.6, 40.0, 1.2, "no visit for 174 days"),
    ("days_since_last_visit", -0.5, 40.0, 1.2, "no visit for -0 days"),
    ("days_since_last_purchase", NAN, 40.0, 1.2, "has never bought"),
    ("days_since_last_purchase", 0.256, 40.0, 1.2, "no purchase for 0 days"),
    ("days_since_last_purchase", 173.6, 40.0, 1.2, "no purchase for 174 days"),
    ("days_since_last_purchase", -0.5, 40.0, 1.2, "no purchase for -0 days"),
    ("tenure_days", NAN, 40.0, 1.2, "tenure_days unknown"),
    ("tenure_days", 0.256, 40.0, 1.2, "customer for only 0 days"),
    ("tenure_days", 173.6, 40.0, 1.2, "customer for only 174 days"),
    ("tenure_days", -0.5, 40.0, 1.2, "customer for only -0 days"),
    ("visits_30d", NAN, 40.0, 1.2, "visits_30d unknown"),
    ("visits_30d", 0.256, 40.0, 1.2, "0 visits in the last 30 days"),
    ("visits_30d", 173.6, 40.0, 1.2, "174 visits in the last 30 days"),
    ("visits_30d", -0.5, 40.0, 1.2, "-0 visits in the last 30 days"),
    ("visits_90d", NAN, 40.0, 1.2, "visits_90d unknown"),
    ("visits_90d", 0.256, 40.0, 1.2, "0 visits in the last 90 days"),
    ("visits_90d", 173.6, 40.0, 1.2, "174 visits in the last 90 days"),
    ("visits_90d", -0.5, 40.0, 1.2, "-0 visits in the last 90 days"),
    ("visits_365d", NAN, 40.0, 1.2, "visits_365d unknown"),
    ("visits_365d", 0.256, 40.0, 1.2, "0 visits in the last 365 days"),
    ("visits_365d", 173.6, 40.0, 1.2, "174 visits in the last 365 days"),
    ("visits_365d", -0.5, 40.0, 1.2, "-0 visits in the last 365 days"),
    ("purchases_30d", NAN, 40.0, 1.2, "purchases_30d unknown"),
    ("purchases_30d", 0.256, 40.0, 1.2, "0 purchases in the last 30 days"),
    ("purchases_30d", 173.6, 40.0, 1.2, "174 purchases in the last 30 days"),
    ("purchases_30d", -0.5, 40.0, 1.2, "-0 purchases in the last 30 days"),
    ("purchases_90d", NAN, 40.0, 1.2, "purchases_90d unknown"),
    ("purchases_90d", 0.256, 40.0, 1.2, "0 purchases in the last 90 days"),
    ("purchases_90d", 173.6, 40.0, 1.2, "174 purchases in the last 90 days"),
    ("purchases_90d", -0.5, 40.0, 1.2, "-0 purchases in the last 90 days"),
    ("purchases_365d", NAN, 40.0, 1.2, "purchases_365d unknown"),
    ("purchases_365d", 0.256, 40.0, 1.2, "0 purchases in the last 365 days"),
    ("purchases_365d", 173.6, 40.0, 1.2, "174 purchases in the last 365 days"),
    ("purchases_365d", -0.5, 40.0, 1.2, "-0 purchases in the last 365 days"),
    ("purchases_total", NAN, 40.0, 1.2, "purchases_total unknown"),
    ("purchases_total", 0.256, 40.0, 1.2, "0 purchases in total"),
    ("purchases_total", 173.6, 40.0, 1.2, "174 purchases in total"),
    ("purchases_total", -0.5, 40.0, 1.2, "-0 purchases in total"),
    ("spend_30d", NAN, 40.0, 1.2, "spend_30d unknown"),
    ("spend_30d", 0.256, 40.0, 1.2, "spent 0.26 in the last 30 days"),
    ("spend_30d", 173.6, 40.0, 1.2, "spent 173.60 in the last 30 days"),
    ("spend_30d", -0.5, 40.0, 1.2, "spent -0.50 in the last 30 days"),
    ("spend_90d", NAN, 40.0, 1.2, "spend_90d unknown"),
    ("spend_90d", 0.256, 40.0, 1.2, "spent 0.26 in the last 90 days"),
    ("spend_90d", 173.6, 40.0, 1.2, "spent 173.60 in the last 90 days"),
    ("spend_90d", -0.5, 40.0, 1.2, "spent -0.50 in the last 90 days"),
    ("spend_365d", NAN, 40.0, 1.2, "spend_365d unknown"),
    ("spend_365d", 0.256, 40.0, 1.2, "spent 0.26 in the last 365 days"),
    ("spend_365d", 173.6, 40.0, 1.2, "spent 173.60 in the last 365 days"),
    ("spend_365d", -0.5, 40.0, 1.2, "spent -0.50 in the last 365 days"),
    ("avg_basket_365d", NAN, 40.0, 1.2, "no purchase in the last year"),
    ("avg_basket_365d", 0.256, 40.0, 1.2, "small baskets: 0.26 on average"),
    ("avg_basket_365d", 173.6, 40.0, 1.2, "small baskets: 173.60 on average"),
    ("avg_basket_365d", -0.5, 40.0, 1.2, "small baskets: -0.50 on average"),
    ("purchase_gap_mean_days", NAN, 40.0, 1.2, "fewer than two purchases so far"),
    ("purchase_gap_mean_days", 0.256, 40.0, 1.2, "buys only every 0 days on average"),
    ("purchase_gap_mean_days", 173.6, 40.0, 1.2, "buys only every 174 days on average"),
    ("purchase_gap_mean_days", -0.5, 40.0, 1.2, "buys only every -0 days on average"),
    ("purchase_gap_std_days", NAN, 40.0, 1.2, "too few purchases for a rhythm"),
    ("purchase_gap_std_days", 0.256, 40.0, 1.2, "irregular buying: gaps vary by 0 days"),
    ("purchase_gap_std_days", 173.6, 40.0, 1.2, "irregular buying: gaps vary by 174 days"),
    ("purchase_gap_std_days", -0.5, 40.0, 1.2, "irregular buying: gaps vary by -0 days"),
    ("overdue_ratio", NAN, 40.0, 1.2, "no regular buying rhythm yet"),
    ("overdue_ratio", 0.256, 40.0, 1.2, "0.3x their usual 40 days between purchases"),
    ("overdue_ratio", 173.6, 40.0, 1.2, "173.6x their usual 40 days between purchases"),
    ("overdue_ratio", -0.5, 40.0, 1.2, "-0.5x their usual 40 days between purchases"),
    ("purchase_trend_90d", NAN, 40.0, 1.2, "purchase_trend_90d unknown"),
    ("purchase_trend_90d", 0.256, 40.0, 1.2, "purchases changed +26% on the previous 90 days"),
    ("purchase_trend_90d", 173.6, 40.0, 1.2, "purchases changed +17360% on the previous 90 days"),
    ("purchase_trend_90d", -0.5, 40.0, 1.2, "purchases down 50% on the previous 90 days"),
    ("spend_trend_90d", NAN, 40.0, 1.2, "spend_trend_90d unknown"),
    ("spend_trend_90d", 0.256, 40.0, 1.2, "spend changed +26% on the previous 90 days"),
    ("spend_trend_90d", 173.6, 40.0, 1.2, "spend changed +17360% on the previous 90 days"),
    ("spend_trend_90d", -0.5, 40.0, 1.2, "spend down 50% on the previous 90 days"),
    ("visit_trend_90d", NAN, 40.0, 1.2, "visit_trend_90d unknown"),
    ("visit_trend_90d", 0.256, 40.0, 1.2, "visits changed +26% on the previous 90 days"),
    ("visit_trend_90d", 173.6, 40.0, 1.2, "visits changed +17360% on the previous 90 days"),
    ("visit_trend_90d", -0.5, 40.0, 1.2, "visits down 50% on the previous 90 days"),
    ("returns_365d", NAN, 40.0, 1.2, "returns_365d unknown"),
    ("returns_365d", 0.256, 40.0, 1.2, "0 returns in the last year"),
    ("returns_365d", 173.6, 40.0, 1.2, "174 returns in the last year"),
    ("returns_365d", -0.5, 40.0, 1.2, "-0 returns in the last year"),
    ("return_rate_365d", NAN, 40.0, 1.2, "return_rate_365d unknown"),
    ("return_rate_365d", 0.256, 40.0, 1.2, "returned 26% of purchases in the last year"),
    ("return_rate_365d", 173.6, 40.0, 1.2, "returned 17360% of purchases in the last year"),
    ("return_rate_365d", -0.5, 40.0, 1.2, "returned -50% of purchases in the last year"),
    ("complaints_90d", NAN, 40.0, 1.2, "complaints_90d unknown"),
    ("complaints_90d", 0.256, 40.0, 1.2, "0 complaints in the last 90 days"),
    ("complaints_90d", 173.6, 40.0, 1.2, "174 complaints in the last 90 days"),
    ("complaints_90d", -0.5, 40.0, 1.2, "-0 complaints in the last 90 days"),
    ("complaints_365d", NAN, 40.0, 1.2, "complaints_365d unknown"),
    ("complaints_365d", 0.256, 40.0, 1.2, "0 complaints in the last 365 days"),
    ("complaints_365d", 173.6, 40.0, 1.2, "174 complaints in the last 365 days"),
    ("complaints_365d", -0.5, 40.0, 1.2, "-0 complaints in the last 365 days"),
    ("complaint_share_365d", NAN, 40.0, 1.2, "complaint_share_365d unknown"),
    ("complaint_share_365d", 0.256, 40.0, 1.2, "complaints are 26% of their contacts this year"),
    ("complaint_share_365d", 173.6, 40.0, 1.2, "complaints are 17360% of their contacts this year"),
    ("complaint_share_365d", -0.5, 40.0, 1.2, "complaints are -50% of their contacts this year"),
    ("discount_share_365d", NAN, 40.0, 1.2, "discount_share_365d unknown"),
    ("discount_share_365d", 0.256, 40.0, 1.2, "26% of purchases made with a discount"),
    ("discount_share_365d", 173.6, 40.0, 1.2, "17360% of purchases made with a discount"),
    ("discount_share_365d", -0.5, 40.0, 1.2, "-50% of purchases made with a discount"),
    ("days_since_last_purchase", 74.0, 24.7, 3.0, "no purchase for 74 days, 3.0x longer than usual"),
    ("days_since_last_purchase", 74.0, 49.0, 1.5, "no purchase for 74 days, 1.5x longer than usual"),
    ("days_since_last_purchase", 74.0, 50.0, 1.49, "no purchase for 74 days"),
    ("days_since_last_purchase", 74.0, NAN, NAN, "no purchase for 74 days"),
    ("overdue_ratio", 3.0, 24.7, 3.0, "3.0x their usual 25 days between purchases"),
    ("overdue_ratio", 1.5, NAN, 1.5, "1.5x their usual nan days between purchases"),
    ("tenure_days", 179.6, 40.0, 1.2, "customer for only 180 days"),
    ("tenure_days", 180.0, 40.0, 1.2, "customer for 180 days"),
    ("purchase_trend_90d", -1.0, 40.0, 1.2, "purchases down 100% on the previous 90 days"),
    ("visit_trend_90d", 0.0, 40.0, 1.2, "visits changed +0% on the previous 90 days"),
    ("not_a_feature", 2.5, 40.0, 1.2, "not_a_feature = 2.5"),
    ("not_a_feature", NAN, 40.0, 1.2, "not_a_feature unknown"),
]


@pytest.mark.parametrize("feature, value, gap, overdue, expected", SENTENCES)
def test_sentence_is_the_one_written_before_the_records(feature, value, gap, overdue, expected):
    row = {"purchase_gap_mean_days": gap, "overdue_ratio": overdue, feature: value}
    assert reason_text(feature, row) == expected


def test_every_feature_has_its_sentences_written_out_above():
    assert {f for f, *_ in SENTENCES} >= set(FEATURE_NAMES)


def test_categories_are_unchanged_and_each_has_a_winback_action():
    assert REASON_CATEGORY == {
        "days_since_last_purchase": "overdue", "overdue_ratio": "overdue", "days_since_last_event": "overdue",
        "purchase_gap_mean_days": "overdue", "purchase_gap_std_days": "overdue",
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
