import pandas as pd
import pyarrow as pa
import pytest

from expectations.winback import WINBACK_SCHEMA
from models.winback import DEFAULT_ACTIONS, WinbackPolicy, select_winback, spreadsheet_safe


def policy(**kw) -> WinbackPolicy:
    """High tier, 30-day cooldown, 180 days of inactivity at most, the default actions; each overridable."""
    return WinbackPolicy(**{"top_n": None, "cooldown_days": 30, "max_inactive_days": 180,
                            "actions": dict(DEFAULT_ACTIONS), **kw})


def scores():
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "as_of": [pd.Timestamp("2024-06-01").date()] * 5,
        "churn_probability": [0.95, 0.8, 0.75, 0.9, 0.2],
        "risk_tier": ["high", "high", "high", "high", "low"],
        "value_at_risk": [10.0, 80.0, 30.0, 500.0, 90.0],
        "expected_value": [10.5, 100.0, 40.0, 555.0, 450.0],
        "days_since_last_purchase": [40.0, 60.0, 20.0, 400.0, 5.0],
        "days_since_last_event": [30.0, 60.0, 10.0, 390.0, 5.0],
        "reason_1_feature": ["complaints_90d", "days_since_last_purchase", "discount_share_365d", "tenure_days", None],
        "reason_1_text": ["2 complaints", "no purchase for 60 days", "60% with discount", "x", None],
        "model_version": ["1"] * 5,
    })


def test_high_tier_ranked_by_value_at_risk_without_the_long_gone():
    w = select_winback(scores(), policy())
    assert pa.Table.from_pandas(w, schema=WINBACK_SCHEMA, preserve_index=False).num_rows == 3  # the contract holds
    assert w["customer_id"].tolist() == ["b", "c", "a"]  # d is gone 390 days; e is low tier
    assert w["winback_rank"].tolist() == [1, 2, 3]
    assert w["suggested_action"].tolist() == [DEFAULT_ACTIONS["overdue"], DEFAULT_ACTIONS["price_sensitive"],
                                              DEFAULT_ACTIONS["complaints"]]


def test_top_n_takes_value_at_risk_across_tiers_and_cooldown_excludes_recent_contacts():
    contacts = pd.DataFrame({"customer_id": ["b", "c"], "contacted_at": ["2024-05-20T10:00:00Z", "2024-03-01"]})
    w = select_winback(scores(), policy(top_n=2), contacts)
    assert w["customer_id"].tolist() == ["e", "c"]  # b contacted 12 days ago; c's contact is older than 30 days


def test_actions_are_configurable():
    w = select_winback(scores(), policy(actions={**DEFAULT_ACTIONS, "overdue": "call them"}))
    assert w.set_index("customer_id").loc["b", "suggested_action"] == "call them"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(prefix):
    f = pd.DataFrame({"customer_id": [prefix + "HYPERLINK(\"http://x\")", "ok"], "value": [-1.5, 2.0]})
    safe = spreadsheet_safe(f)
    assert safe["customer_id"].tolist() == ["'" + prefix + "HYPERLINK(\"http://x\")", "ok"]
    assert safe["value"].tolist() == [-1.5, 2.0]  # numbers stay numbers
