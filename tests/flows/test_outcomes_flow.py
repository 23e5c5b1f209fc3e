"""The closed campaign loop on a small simulation, and `churn outcomes` on it (one model trained for the module)."""

import json

import pandas as pd
import pytest

from churn.cli import main
from storage import catalog, layout


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    from churn.closed_loop import closed_loop

    home = tmp_path_factory.mktemp("loop") / "home"
    result = closed_loop(home, customers=1500, days=450, seed=2, log_runs=False)
    return layout.Paths(home), result


def test_churn_outcomes_json_measures_the_list_beside_the_simulators_truth_and_logs_once(loop, capsys):
    paths, result = loop
    assert main(["--home", str(paths.home), "outcomes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"] == [] and len(out["lists"]) == 1
    entry = out["lists"][0]
    record = catalog.campaign_lists(paths)[0]
    listed = catalog.read_list(paths, record)
    o = entry["overall"]
    assert entry["list_id"] == record["list_id"] == result["outcome"]["list_id"]
    assert (o["target"], o["control"]) == ((listed["group"] == "target").sum(), (listed["group"] == "control").sum())
    assert o["control"] > 0.2 * (o["target"] + o["control"])  # the loop's hold-out share is 0.3
    assert o["retention_difference_low"] <= o["retention_difference"] <= o["retention_difference_high"]
    assert entry["table"][0] == o and {r["breakdown"] for r in entry["table"]} == {
        "overall", "risk_tier", "reason_category", "action_category"}
    # the same numbers as the loop measured, and the simulator's truth beside them
    assert o == result["outcome"]["overall"]
    assert entry["simulated_truth"] == result["truth"]["target"]
    assert entry["logged_now"] is True and entry["mlflow_run_id"]
    # retained means an activity event in the window: count it straight from the events
    events = pd.concat([pd.read_parquet(f) for f in sorted(paths.events.glob("event_month=*/*.parquet"))])
    as_of = pd.Timestamp(entry["as_of_time"])
    window = events[(events["event_type"] == "purchase") & (events["event_time"] > as_of)
                    & (events["event_time"] <= as_of + pd.Timedelta(days=entry["horizon_days"]))]
    target_ids = set(listed.loc[listed["group"] == "target", "customer_id"])
    assert o["retained_target"] == len(target_ids & set(window["customer_id"]))
    assert o["spend_target"] == pytest.approx(window.loc[window["customer_id"].isin(target_ids), "amount"].sum()
                                              / o["target"])

    # idempotent: run again, nothing new is logged
    assert main(["--home", str(paths.home), "outcomes", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["lists"][0]
    assert again["logged_now"] is False and again["mlflow_run_id"] == entry["mlflow_run_id"]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{paths.mlflow / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("churn-campaigns")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["list_id"] == entry["list_id"]
    assert "retention_by_tier.png" in [a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)]

    # `churn evaluate` reports the same outcome beside the scored days' realised quality (logged already)
    assert main(["--home", str(paths.home), "evaluate", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)["campaign_outcomes"]["lists"][0]
    assert evaluated["overall"] == o and evaluated["mlflow_run_id"] == entry["mlflow_run_id"]
    assert main(["--home", str(paths.home), "evaluate"]) == 0
    assert f"list {entry['list_id']}: {o['target']:,} target vs {o['control']:,} control" in capsys.readouterr().out


def test_the_csv_has_no_control_customer_and_the_simulator_contacted_the_target_group_only(loop):
    paths, result = loop
    record = catalog.campaign_lists(paths)[0]
    listed = catalog.read_list(paths, record)
    csv = pd.read_csv(paths.winback / f"as_of={record['as_of']}" / f"{record['file_stem']}.csv", dtype=str)
    control = set(listed.loc[listed["group"] == "control", "customer_id"])
    assert control and not control & set(csv["Customer ID"])
    assert set(csv["Customer ID"]) == set(listed.loc[listed["group"] == "target", "customer_id"])
    truth, effect = catalog.read_campaign_truth(paths, record["list_id"])
    assert truth.set_index("customer_id")["group"].sort_index().equals(
        listed.set_index("customer_id")["group"].sort_index())
    assert effect["target"]["customers"] == len(csv)


def test_a_list_whose_horizon_has_not_passed_is_skipped_and_said_so(loop, capsys):
    from flows.score import score
    from flows.winback import winback
    from tests.conftest import config

    paths, _ = loop
    first = catalog.campaign_lists(paths)[0]["list_id"]
    score(config(paths, "score"), None, pd.Timestamp.now(tz="UTC"))  # the latest day: its window is all future
    new = winback(config(paths, "winback"), None)["list_id"]
    assert main(["--home", str(paths.home), "outcomes"]) == 0
    text = capsys.readouterr().out
    assert f"list {first}:" in text and f"skipped {new}: its 90-day outcome window ends" in text
    assert "not measurable yet" in text
    assert main(["--home", str(paths.home), "outcomes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["list_id"] for e in out["lists"]] == [first]
    assert [s["list_id"] for s in out["skipped"]] == [new]
    assert main(["--home", str(paths.home), "outcomes", "--list", "winback-1999-01-01"]) == 2
    assert "no list 'winback-1999-01-01' in the campaign ledger" in capsys.readouterr().err
