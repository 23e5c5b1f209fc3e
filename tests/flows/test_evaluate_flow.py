"""`churn evaluate` on generated data with a real (SQLite) MLflow and the Prefect test harness: realised quality of
a scored day whose horizon has passed, the estimate for an open one, idempotence, and the degraded event."""

import shutil

import pandas as pd
import pytest

from storage import layout
from tests.conftest import NOW, config


@pytest.fixture
def monitored(trained, tmp_path):
    """A copy of the trained home with two scored days: 2024-03-01 (its 90 days have passed: the store ends
    2024-08-22) and 2024-07-01 (open)."""
    from flows.score import score

    home = tmp_path / "home"
    shutil.copytree(trained.home, home, ignore=shutil.ignore_patterns("scores", "winback", "campaigns"))
    paths = layout.Paths(home)
    for day in ("2024-03-01", "2024-07-01"):
        score(config(paths, "score", exact_reasons_top_n=0), pd.Timestamp(f"{day}T00:00Z"), now=NOW)
    return paths


@pytest.fixture
def emitted(monkeypatch):
    """The Prefect events the flows emit (each still emitted for real)."""
    from flows import events

    seen, real = [], events.emit

    def record(event, home, payload):
        seen.append((event, payload))
        real(event, home, payload)

    monkeypatch.setattr(events, "emit", record)
    return seen


def monitoring_runs(paths):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{paths.mlflow / 'mlflow.db'}")
    exp = client.get_experiment_by_name("churn-monitoring")
    return {r.data.tags["as_of"]: r for r in client.search_runs([exp.experiment_id])}


def test_realised_metrics_for_a_passed_horizon_an_estimate_for_an_open_one_logged_once(monitored, emitted, capsys):
    from churn.cli import _print_evaluate
    from features.customer import churn_labels
    from flows.evaluate import evaluate_flow
    from models.evaluate import metrics
    from storage import catalog, store

    r = evaluate_flow(config(monitored, "evaluate"))
    days = {d["as_of"]: d for d in r["days"]}
    assert list(days) == ["2024-03-01", "2024-07-01"]
    done, open_ = days["2024-03-01"], days["2024-07-01"]
    assert (done["status"], open_["status"]) == ("realised", "open") and open_["realised"] is None
    assert open_["horizon_ends"][:10] == "2024-09-29"
    # the realised labels are the training labels' definition, over the customers scored that day
    scores, _ = catalog.read_scores(monitored, "2024-03-01")
    y = churn_labels(store.read_events(monitored), pd.Timestamp("2024-03-01T00:00Z"), 90,
                     pd.Index(scores["customer_id"]))
    expected = metrics(y.to_numpy(), scores["churn_probability"].to_numpy())
    m = done["realised"]["metrics"]
    assert m["roc_auc"] == pytest.approx(expected["roc_auc"]) and m["brier"] == pytest.approx(expected["brier"])
    assert 0.6 < m["roc_auc"] <= 1 and m["n"] == len(scores)
    assert len(done["realised"]["calibration"]) == 10 and len(done["realised"]["lift_by_decile"]) == 10
    assert {t["tier"] for t in done["realised"]["by_tier"]} <= {"high", "medium", "low"}
    assert sum(t["customers"] for t in done["realised"]["by_tier"]) == len(scores)
    # both days carry the label-free estimate and the model's training estimate
    assert 0.5 < open_["estimate"]["roc_auc"] < 1 and 0 < open_["estimate"]["brier"] < 0.25
    assert done["training_roc_auc"] is not None and not done["degradation"]["degraded"]
    assert r["by_model_version"][0]["days"] == 2 and r["by_model_version"][0]["days_realised"] == 1
    # the model was trained on this store (to 2024-08-22): the realised day's outcome window lies wholly inside
    # its training data, so it is flagged and left out of the version's mean realised ROC-AUC
    _, last_event, _ = store.store_time_range(monitored)
    assert done["training_data_end"] == str(last_event.date()) and done["in_sample"] == "whole"
    assert open_["in_sample"] == "partly"
    # the end is the version's training cutoff (`churn train --as-of`), not the store's last event
    from mlflow import MlflowClient

    from storage import tracking

    MlflowClient().set_model_version_tag(done["model_name"], done["model_version"], "as_of", "2024-03-01")
    assert tracking.training_estimate(done["model_name"], done["model_version"]) == (done["training_roc_auc"],
                                                                                      "2024-03-01")
    MlflowClient().set_model_version_tag(done["model_name"], done["model_version"], "as_of", done["training_data_end"])
    assert r["by_model_version"][0]["days_in_sample"] == 1 and r["by_model_version"][0]["realised_roc_auc"] is None
    # the win-back lists' outcomes come in the same run (no list recorded in this store: none measured)
    assert r["campaign_outcomes"]["lists"] == [] and r["campaign_outcomes"]["skipped"] == []
    # in MLflow: one run per scored day, the realised figures beside the estimate
    runs = monitoring_runs(monitored)
    assert set(runs) == {"2024-03-01", "2024-07-01"}
    assert runs["2024-03-01"].data.metrics["realised_roc_auc"] == pytest.approx(m["roc_auc"])
    assert runs["2024-03-01"].data.metrics["expected_roc_auc"] == pytest.approx(done["estimate"]["roc_auc"])
    assert "realised_roc_auc" not in runs["2024-07-01"].data.metrics
    assert runs["2024-07-01"].data.tags["status"] == "open" and not emitted
    # again: nothing is logged twice
    again = evaluate_flow(config(monitored, "evaluate"))
    assert [d["logged"] for d in again["days"]] == ["already logged", "already logged"]
    assert {k: v.info.run_id for k, v in monitoring_runs(monitored).items()} == {
        k: v.info.run_id for k, v in runs.items()}
    assert again["days"][0]["realised"]["metrics"]["roc_auc"] == pytest.approx(m["roc_auc"])
    capsys.readouterr()
    _print_evaluate(again)  # the short table of `churn evaluate`
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 scored day(s); events stored up to 2024-08-2")
    assert lines[2].startswith("2024-03-01 v") and "realised" in lines[2] and f"{m['roc_auc']:.4f}" in lines[2]
    assert lines[2].endswith(f"in-sample (whole: trained on data to {last_event.date()})")
    assert any(line.startswith("in-sample: the day's outcome window lies") for line in lines)
    assert lines[3].startswith("2024-07-01 v") and lines[3].endswith("horizon ends 2024-09-29")


def test_a_model_below_its_training_estimate_is_announced_once_and_an_open_day_is_realised_later(
        monitored, emitted):
    from mlflow import MlflowClient

    from flows.evaluate import evaluate_flow
    from flows.events import DEGRADED
    from flows.ingest import ingest_file

    # the registry says validation ROC-AUC 0.999: the realised one (about 0.96 on this data) is 0.04 below it
    client = MlflowClient(tracking_uri=f"sqlite:///{monitored.mlflow / 'mlflow.db'}")
    version = client.get_model_version_by_alias("churn", "champion").version
    client.set_model_version_tag("churn", version, "val_roc_auc", "0.9990")
    r = evaluate_flow(config(monitored, "evaluate", degradation_margin=0.02))
    assert [d["as_of"] for d in r["degraded"]] == ["2024-03-01"]
    assert [(e, p["as_of"], p["model_version"], p["degraded"]) for e, p in emitted] == [
        (DEGRADED, "2024-03-01", str(version), True)]
    assert "0.9990 (margin 0.02)" in emitted[0][1]["message"]
    assert monitoring_runs(monitored)["2024-03-01"].data.tags["degraded"] == "true"
    evaluate_flow(config(monitored, "evaluate", degradation_margin=0.02))
    assert len(emitted) == 1  # announced once, not on every run
    # events up to 2024-10-01 arrive: the open day's horizon has passed, its run gets the realised figures
    late = monitored.landing / "late.csv"
    late.write_text("event_id,customer_id,event_type,event_time,amount\nlate-1,C0000001,visit,2024-10-01T12:00:00Z,\n")
    assert ingest_file(config(monitored, "ingest"), late, now=NOW)["stored"] == 1
    open_run = monitoring_runs(monitored)["2024-07-01"]
    r = evaluate_flow(config(monitored, "evaluate", degradation_margin=0.02))
    day = {d["as_of"]: d for d in r["days"]}["2024-07-01"]
    assert day["status"] == "realised" and day["logged"] == "realised now"
    run = monitoring_runs(monitored)["2024-07-01"]
    assert run.info.run_id == open_run.info.run_id and run.data.tags["status"] == "realised"
    assert run.data.metrics["expected_roc_auc"] == pytest.approx(day["estimate"]["roc_auc"])
    assert run.data.metrics["realised_roc_auc"] == pytest.approx(day["realised"]["metrics"]["roc_auc"])
    assert [p["as_of"] for _, p in emitted[1:]] == (["2024-07-01"] if day["degradation"]["degraded"] else [])
