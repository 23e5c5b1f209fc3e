import numpy as np
import pandas as pd
import pytest

from simulator.campaign import Campaign, continue_with_campaign, responses, true_effect
from simulator.generate import SimulationConfig, customer_parameters

CFG = SimulationConfig(customers=4000, days=400, seed=11, chunk_customers=2000)
AS_OF = CFG.start_ts + pd.Timedelta(days=CFG.days - 1, hours=21)  # the last simulated day, 21:00


def _listed(target_share: float = 0.5) -> pd.DataFrame:
    """Every customer of the simulation on a 'list', every other one (or none) a target."""
    ids = pd.concat([customer_parameters(CFG, c, f, min(CFG.chunk_customers, CFG.customers - f))["customer_id"]
                     for c, f in enumerate(range(0, CFG.customers, CFG.chunk_customers))], ignore_index=True)
    group = np.where(np.arange(len(ids)) % 2 == 0, "target", "control") if target_share else "control"
    return pd.DataFrame({"customer_id": ids, "group": group})


def _run(listed: pd.DataFrame, seed: int = 3):
    targets = set(listed.loc[listed["group"] == "target", "customer_id"])
    evs, truths = zip(*continue_with_campaign(CFG, Campaign(AS_OF, 90, seed), targets, listed, ("purchase",)))
    return pd.concat(evs, ignore_index=True), pd.concat(truths, ignore_index=True)


@pytest.fixture(scope="module")
def campaign_run():
    listed = _listed()
    events, truth = _run(listed)
    return listed, events, truth


def test_control_customers_get_exactly_the_events_they_would_have_had_without_a_campaign(campaign_run):
    listed, events, truth = campaign_run
    nobody_events, nobody_truth = _run(_listed(target_share=0))
    control = set(listed.loc[listed["group"] == "control", "customer_id"])
    pd.testing.assert_frame_equal(events[events["customer_id"].isin(control)].reset_index(drop=True),
                                  nobody_events[nobody_events["customer_id"].isin(control)].reset_index(drop=True))
    # the targets' events changed: responders came back, the annoyed left
    target = set(listed.loc[listed["group"] == "target", "customer_id"])
    assert not events[events["customer_id"].isin(target)].reset_index(drop=True).equals(
        nobody_events[nobody_events["customer_id"].isin(target)].reset_index(drop=True))
    # the potential outcomes do not depend on who was contacted
    pd.testing.assert_frame_equal(truth.drop(columns="group"), nobody_truth.drop(columns="group"))


def test_events_start_after_the_cutoff_and_never_repeat_an_id_of_the_first_simulation(campaign_run):
    _, events, _ = campaign_run
    assert events["event_time"].min() > AS_OF
    assert events["event_time"].max() < AS_OF.normalize() + pd.Timedelta(days=92)  # the window's last day, whole
    assert events["event_id"].is_unique and events["event_id"].str.contains("-c400-").all()


def test_responses_are_heterogeneous_and_act_only_in_their_direction(campaign_run):
    _, _, truth = campaign_run
    share = truth["response"].value_counts(normalize=True)
    assert 0.6 < share["unmoved"] < 0.8 and 0.15 < share["responder"] < 0.25 and 0.05 < share["annoyed"] < 0.15
    d = truth["p_retained_1"] - truth["p_retained_0"]
    assert (d[truth["response"] == "unmoved"] == 0).all()
    assert (d[truth["response"] == "responder"] >= -1e-12).all() and (d[truth["response"] == "responder"] > 0.05).any()
    assert (d[truth["response"] == "annoyed"] <= 1e-12).all() and (d[truth["response"] == "annoyed"] < -0.05).any()
    # a churned customer who is annoyed stays gone: nothing to lose
    assert (d[(truth["response"] == "annoyed") & (truth["state_at_contact"] == "churned")] == 0).all()
    # the response belongs to the customer: the same in any list, another with another campaign seed
    ids = truth["customer_id"].head(50)
    assert responses(ids, 3).equals(responses(ids.iloc[::-1], 3).iloc[::-1])
    assert not responses(truth["customer_id"], 3).equals(responses(truth["customer_id"], 4))


def test_the_truth_matches_what_the_simulation_then_does(campaign_run):
    """P(retained) in each group's truth is the observed retention in the window, within sampling error; and the
    truth file's effect is the mean over the target group."""
    listed, events, truth = campaign_run
    window = events[(events["event_type"] == "purchase") & (events["event_time"] <= AS_OF + pd.Timedelta(days=90))]
    kept = truth["customer_id"].isin(set(window["customer_id"]))
    for group, col in (("target", "p_retained_1"), ("control", "p_retained_0")):
        g = truth["group"] == group
        se = np.sqrt((truth.loc[g, col] * (1 - truth.loc[g, col])).sum()) / g.sum()
        assert abs(kept[g].mean() - truth.loc[g, col].mean()) < 4 * se
    spend = window.groupby("customer_id")["amount"].sum().reindex(truth["customer_id"]).fillna(0).to_numpy()
    t = truth["group"].to_numpy() == "target"
    assert abs(spend[t].mean() / truth.loc[t, "expected_spend_1"].mean() - 1) < 0.1
    effect = true_effect(truth)
    target = truth[truth["group"] == "target"]
    assert effect["target"]["customers"] == len(target) == 2000
    assert effect["target"]["retention_difference"] == pytest.approx(
        (target["p_retained_1"] - target["p_retained_0"]).mean())
    assert effect["target"]["incremental_customers"] == pytest.approx(effect["target"]["retention_difference"] * 2000)
    assert sum(effect["responses_in_target"].values()) == 2000


def test_the_campaign_must_start_where_the_simulation_ended():
    with pytest.raises(ValueError, match="last day"):
        next(continue_with_campaign(CFG, Campaign(AS_OF - pd.Timedelta(days=30), 90, 1), set(), _listed(),
                                    ("purchase",)))
