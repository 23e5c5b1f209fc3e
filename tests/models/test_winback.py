import pandas as pd
import pyarrow as pa
import pytest

from expectations.winback import CAMPAIGN_SHEET, REASON_CATEGORIES, WINBACK_SCHEMA
from models.reasons import REASON_CATEGORY
from models.winback import (
    ACTION_PRIORITY,
    DEFAULT_ACTIONS,
    WinbackPolicy,
    campaign_sheet,
    choose_action,
    hold_out,
    select_winback,
    selection_line,
    spreadsheet_safe,
)


def policy(**kw) -> WinbackPolicy:
    """High tier, 30-day cooldown, 180 days of inactivity at most, the default actions; each overridable."""
    return WinbackPolicy(**{"top_n": None, "cooldown_days": 30, "max_inactive_days": 180,
                            "actions": dict(DEFAULT_ACTIONS), "currency": "GBP", **kw})


def scores():
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "as_of": [pd.Timestamp("2024-06-01").date()] * 6,
        "churn_probability": [0.95, 0.8, 0.754, 0.9, 0.2, 0.71],
        "risk_tier": ["high", "high", "high", "high", "low", "high"],
        "value_at_risk": [10.0, 80.0, 30.0, 500.0, 90.0, 5.123],
        "expected_value": [10.5, 100.0, 40.0, 555.0, 450.0, 7.2],
        "days_since_last_purchase": [40.0, 60.4, 20.0, 400.0, 5.0, None],
        "days_since_last_event": [30.0, 60.0, 10.0, 390.0, 5.0, 12.0],
        "reason_1_feature": ["visit_trend_90d", "days_since_last_purchase", "discount_share_365d", "tenure_days", None,
                             None],
        "reason_1_text": ["visits down", "no purchase for 60 days", "=60 % with discount", "x", None, None],
        "reason_2_feature": ["complaints_90d", "spend_trend_90d", None, None, None, None],
        "reason_2_text": ["3 complaints in the last 90 days", "spend down", None, None, None, None],
        "reason_3_feature": ["spend_90d", None, None, None, None, None],
        "reason_3_text": ["spent little", None, None, None, None, None],
        "model_version": ["1"] * 6,
    })


def test_high_tier_ranked_by_value_at_risk_without_the_long_gone():
    w = select_winback(scores(), policy()).chosen
    listed = hold_out(w, "winback-2024-06-01", 0.1)
    assert pa.Table.from_pandas(listed, schema=WINBACK_SCHEMA, preserve_index=False).num_rows == 4  # the contract
    assert w["customer_id"].tolist() == ["b", "c", "a", "f"]  # d is gone 390 days; e is low tier
    assert w["winback_rank"].tolist() == [1, 2, 3, 4]
    assert w["risk_score"].tolist() == [80, 75, 95, 71]
    assert w["suggested_action"].tolist() == [DEFAULT_ACTIONS["overdue"], DEFAULT_ACTIONS["price_sensitive"],
                                              DEFAULT_ACTIONS["complaints"], DEFAULT_ACTIONS["other"]]
    assert w["action_category"].tolist() == ["overdue", "price_sensitive", "complaints", "other"]
    assert w.loc[2, ["reason_1_category", "reason_2_category", "reason_3_category"]].tolist() == \
        ["disengaged", "complaints", "spend_falling"]
    assert (w["currency"] == "GBP").all() and (w["selection"] == "high tier").all()


def test_a_complaint_among_any_of_the_three_reasons_gets_the_service_call():
    """Issue #14: a customer with 3 complaints in 90 days was sent re-engagement content (reason 1 only)."""
    w = select_winback(scores(), policy()).chosen.set_index("customer_id")
    assert w.loc["a", "reason_1_category"] == "disengaged" and w.loc["a", "reason_2_feature"] == "complaints_90d"
    assert w.loc["a", "suggested_action"] == DEFAULT_ACTIONS["complaints"]


@pytest.mark.parametrize("reasons, decides", [
    (["disengaged", "price_sensitive", "spend_falling"], "spend_falling"),
    (["spend_falling", "overdue", None], "overdue"),
    (["disengaged", "price_sensitive", None], "price_sensitive"),
    (["disengaged", None, None], "disengaged"),
    (["overdue", "spend_falling", "complaints"], "complaints"),
    ([None, None, None], "other"),
])
def test_the_action_follows_the_documented_priority_across_the_three_reasons(reasons, decides):
    assert ACTION_PRIORITY == ("complaints", "overdue", "spend_falling", "price_sensitive", "disengaged")
    categories = pd.DataFrame([reasons], columns=[1, 2, 3]).astype(object)
    category, action = choose_action(categories.where(categories.notna(), None), DEFAULT_ACTIONS)
    assert category.tolist() == [decides] and action.tolist() == [DEFAULT_ACTIONS[decides]]


def test_every_reason_category_has_a_place_in_the_priority():
    assert set(ACTION_PRIORITY) == set(REASON_CATEGORIES) == set(REASON_CATEGORY.values())


def test_top_n_takes_value_at_risk_across_tiers_and_cooldown_excludes_recent_contacts():
    contacts = pd.DataFrame({"customer_id": ["b", "c"], "contacted_at": ["2024-05-20T10:00:00Z", "2024-03-01"]})
    sel = select_winback(scores(), policy(top_n=2), contacts)
    # b was contacted 12 days ago; c's contact is older than 30 days
    assert sel.chosen["customer_id"].tolist() == ["e", "c"]
    assert (sel.chosen["selection"] == "top 2 by value at risk").all()
    # the day's list written again after the campaign went out: those contacted since are not listed twice
    later = pd.DataFrame({"customer_id": ["e"], "contacted_at": ["2024-06-05T09:00:00Z"]})
    again = select_winback(scores(), policy(top_n=2), pd.concat([contacts, later]))
    assert "e" not in again.chosen["customer_id"].tolist()
    assert again.steps[-2].label == "after the 30-day cooldown (1 of them contacted after the list's day)"
    # ... unless the contact was this list's own campaign: its customers stay (the experiment keeps them)
    own = later.assign(list_id="winback-top2-2024-06-01")
    mine = select_winback(scores(), policy(top_n=2), pd.concat([contacts, own]), "winback-top2-2024-06-01")
    assert mine.chosen["customer_id"].tolist() == ["e", "c"]
    assert mine.steps[-2].label == "after the 30-day cooldown (1 contacted by this list's own campaign kept)"
    other = select_winback(scores(), policy(top_n=2), pd.concat([contacts, own]), "winback-top2-2024-06-02")
    assert "e" not in other.chosen["customer_id"].tolist()
    # no cooldown (0 days): nobody is dropped, contacted before the day or since
    none = select_winback(scores(), policy(top_n=2, cooldown_days=0), pd.concat([contacts, later]))
    assert none.chosen["customer_id"].tolist() == ["e", "b"]
    assert none.steps[-2].label == "after the 0-day cooldown"


def test_every_selection_step_is_counted_so_nobody_is_dropped_silently():
    """Issue #14: "756 high -> 242 listed" said nothing about the customers dropped on the way."""
    contacts = pd.DataFrame({"customer_id": ["b"], "contacted_at": ["2024-05-20T10:00:00Z"]})
    sel = select_winback(scores(), policy(), contacts)
    assert [(s.step, s.customers) for s in sel.steps] == [("scored", 6), ("tier", 5), ("inactive", 4),
                                                          ("value", 4), ("cooldown", 3)]
    assert selection_line(sel.steps) == ("6 scored -> 5 in the high tier -> 4 after the 180-day inactivity limit -> "
                                         "4 with value at risk above 0 -> 3 after the 30-day cooldown")
    top = select_winback(scores(), policy(top_n=2))
    assert selection_line(top.steps) == ("6 scored -> 5 after the 180-day inactivity limit -> 5 with value at risk "
                                         "above 0 -> 5 after the 30-day cooldown (no contact history given) -> 2 kept: "
                                         "the top 2 by value at risk")


def test_customers_with_nothing_at_risk_are_not_on_the_list():
    """New-user pass: 12 % of the demo list had value at risk 0 (never bought, or no purchase for over a year)."""
    s = scores()
    s.loc[s["customer_id"] == "c", "value_at_risk"] = 0.0
    sel = select_winback(s, policy())
    assert "c" not in set(sel.chosen["customer_id"]) and (sel.chosen["value_at_risk"] > 0).all()
    assert [(x.step, x.customers) for x in sel.steps][2:4] == [("inactive", 4), ("value", 3)]


def test_each_selection_has_its_own_file_name():
    assert policy().list_name == "winback" and policy(top_n=10).list_name == "winback-top10"


def test_actions_are_configurable():
    w = select_winback(scores(), policy(actions={**DEFAULT_ACTIONS, "overdue": "call them"})).chosen
    assert w.set_index("customer_id").loc["b", "suggested_action"] == "call them"


def test_the_campaign_sheet_has_human_headers_rounded_numbers_and_all_three_reasons():
    sheet = campaign_sheet(hold_out(select_winback(scores(), policy()).chosen, "winback-2024-06-01", 0.0), "EUR")
    assert list(sheet.columns) == ["Rank", "Customer ID", "Risk score (0-100)", "Risk tier", "Value at risk (EUR)",
                                   "Days since last purchase", "Suggested action", "Reason 1", "Reason 2",
                                   "Reason 3"]
    assert len(CAMPAIGN_SHEET) == len(sheet.columns)
    first = sheet.iloc[0]
    assert first["Rank"] == 1 and first["Customer ID"] == "b" and first["Risk score (0-100)"] == 80
    assert first["Days since last purchase"] == 60 and first["Reason 2"] == "spend down"
    assert sheet["Value at risk (EUR)"].tolist() == [80.0, 30.0, 10.0, 5.12]
    assert sheet.iloc[1]["Reason 1"] == "'=60 % with discount"  # formula prefixes neutralised
    csv = sheet.to_csv(index=False, lineterminator="\n").splitlines()
    assert csv[2].startswith("2,c,75,high,30.0,20,discount: time-limited discount code,'=60 % with discount,,")
    assert csv[4].startswith("4,f,71,high,5.12,,")  # never bought: an empty cell, not "nan"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(prefix):
    f = pd.DataFrame({"customer_id": [prefix + "HYPERLINK(\"http://x\")", "ok"], "value": [-1.5, 2.0]})
    safe = spreadsheet_safe(f)
    assert safe["customer_id"].tolist() == ["'" + prefix + "HYPERLINK(\"http://x\")", "ok"]
    assert safe["value"].tolist() == [-1.5, 2.0]  # numbers stay numbers


def big_list(n=2000, seed=0):
    """A ranked list of n customers over three tiers' worth of strata (tier x action category)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(n)],
                         "risk_tier": rng.choice(["high", "medium"], n, p=[0.7, 0.3]),
                         "action_category": rng.choice(["complaints", "overdue", "spend_falling", "other"], n,
                                                       p=[0.05, 0.6, 0.25, 0.1]),
                         "value_at_risk": np.sort(rng.gamma(2, 50, n))[::-1]})


def test_the_hold_out_is_stratified_deterministic_and_never_reaches_the_csv():
    """Issue #15: a random control share, stratified by tier and reason category, deterministic from the list id
    and customer id; control customers are in the Parquet, never in the CSV for the campaign tool."""
    import numpy as np

    w = big_list()
    a = hold_out(w, "winback-2024-06-01", 0.1)
    strata = a.groupby(["risk_tier", "action_category"])
    for _, g in strata:
        assert (g["group"] == "control").sum() == np.floor(0.1 * len(g) + 0.5)
    assert set(a["group"]) == {"target", "control"} and (a["list_id"] == "winback-2024-06-01").all()
    # the same list id draws the same groups whatever the row order; another list id draws others
    again = hold_out(w.sample(frac=1, random_state=3), "winback-2024-06-01", 0.1).set_index("customer_id")
    assert again.loc[a["customer_id"], "group"].tolist() == a["group"].tolist()
    other = hold_out(w, "winback-2024-06-08", 0.1)
    overlap = ((a["group"] == "control") & (other["group"] == "control")).sum()
    assert overlap < 0.5 * (a["group"] == "control").sum()
    # target customers are ranked for contact 1..T in the list's order; control has no contact rank
    target = a[a["group"] == "target"]
    assert target["contact_rank"].tolist() == list(range(1, len(target) + 1))
    assert a.loc[a["group"] == "control", "contact_rank"].isna().all()
    # the CSV takes the target group only
    full = pd.DataFrame({"winback_rank": range(1, len(w) + 1), "risk_score": 80, "value_at_risk": w["value_at_risk"],
                         "days_since_last_purchase": 10.0, "suggested_action": "x", "reason_1_text": "r",
                         "reason_2_text": None, "reason_3_text": None}).join(a[["customer_id", "risk_tier",
                                                                                  "group", "contact_rank"]])
    sheet = campaign_sheet(full, "GBP")
    assert set(sheet["Customer ID"]) == set(target["customer_id"]) and sheet["Rank"].tolist() == list(
        range(1, len(target) + 1))
    # no hold-out when the share is 0
    assert (hold_out(w, "winback-2024-06-01", 0.0)["group"] == "target").all()


def test_a_list_written_again_keeps_every_customers_group_whatever_else_changed():
    """A day's list written again after its campaign went out, with some customers dropped meanwhile (contacted by
    another campaign): dropping them moves the strata's quotas, and a fresh draw turned control customers into
    targets (20 of the demo's 170), who would then be contacted: the control group contaminated."""
    w = big_list()
    first = hold_out(w, "winback-2024-06-01", 0.1)
    rest = w[~w["customer_id"].isin(first.loc[first["group"] == "target", "customer_id"].head(150))]
    fresh = hold_out(rest, "winback-2024-06-01", 0.1)
    before = first.set_index("customer_id")["group"]
    assert (fresh.set_index("customer_id")["group"] != before.loc[fresh["customer_id"]]).any(), \
        "the example must be one where a fresh draw moves customers"
    kept = hold_out(rest, "winback-2024-06-01", 0.1, dict(zip(first["customer_id"], first["group"])))
    assert (kept.set_index("customer_id")["group"] == before.loc[kept["customer_id"]]).all()
    target = kept[kept["group"] == "target"]
    assert target["contact_rank"].tolist() == list(range(1, len(target) + 1))
    # a customer new to the list is drawn as before
    newcomer = big_list().assign(customer_id=lambda f: "n" + f["customer_id"].astype(str)).head(40)
    mixed = hold_out(pd.concat([rest, newcomer]), "winback-2024-06-01", 0.1, dict(zip(first["customer_id"],
                                                                                       first["group"])))
    assert set(mixed["group"]) == {"target", "control"}
