"""The train flow against a real (SQLite) MLflow tracking store and model registry."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from expectations.contract import STORE_SCHEMA
from expectations.quarantine import QUARANTINE_SCHEMA
from tests.conftest import config


@pytest.fixture
def store(small_store, tmp_path):
    """A private copy of the session store, so MLflow state starts empty."""
    from storage import layout

    home = tmp_path / "home"
    shutil.copytree(small_store.home, home, ignore=shutil.ignore_patterns("mlflow", "snapshots"))
    return layout.Paths(home)


def run_train(store, **kw):
    from flows.train import train_flow

    uri = f"sqlite:///{store.mlflow / 'mlflow.db'}"
    return train_flow(config(store, "train", tracking_uri=uri, n_train_cutoffs=3), **kw), uri


def test_train_flow_logs_registers_and_promotes_only_a_better_model(store, prefect_harness):
    from mlflow import MlflowClient

    first, uri = run_train(store)
    assert (first["alias"], first["model_version"]) == ("champion", "1")
    assert set(first["baselines"]) == {"recency_rule_90d", "logistic_rfm", "bg_nbd", "pareto_nbd", "oracle",
                                       "oracle_events"}
    # generated data: the oracle that knows the state is above the one that infers it from the events
    assert first["baselines"]["oracle"]["roc_auc"] > first["baselines"]["oracle_events"]["roc_auc"] > 0.8
    assert first["promotion_reason"] == "no champion yet" and first["champion_interval"] is None
    assert first["metrics"]["roc_auc"] > first["baselines"]["recency_rule_90d"]["roc_auc"]

    second, _ = run_train(store)  # same data, same seed: same metrics, so not better than the champion
    assert second["metrics"] == first["metrics"], {k: (v, second["metrics"][k]) for k, v in first["metrics"].items() if v != second["metrics"][k]}
    assert second["baselines"] == first["baselines"]
    assert (second["alias"], second["model_version"]) == ("challenger", "2")
    assert second["champion_before"] == pytest.approx(first["metrics"]["roc_auc"])
    # identical predictions: the paired interval is [0, 0], which does not lie above 0
    assert second["champion_interval"] == pytest.approx({"diff": 0.0, "low": 0.0, "high": 0.0}, abs=1e-9)
    assert "does not lie above 0" in second["promotion_reason"]

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_model_version_by_alias("churn", "champion").version in (1, "1")
    assert client.get_model_version_by_alias("churn", "challenger").version in (2, "2")
    run = client.get_run(first["run_id"])
    assert run.data.params["horizon_days"] == "90" and run.data.params["features"].startswith("days_since_last_event")
    assert run.data.params["validation_cutoff"] == first["validation_cutoff"]
    assert len(run.data.params["snapshot_digest"]) == 16
    assert {"code_version", "data_range"} <= set(run.data.tags)
    assert run.data.metrics["val_roc_auc"] == pytest.approx(first["metrics"]["roc_auc"])
    assert {"recency_rule_90d_roc_auc", "oracle_roc_auc", "oracle_events_roc_auc", "bg_nbd_roc_auc", "pareto_nbd_pr_auc",
            "vs_best_baseline_roc_auc_low", "vs_best_baseline_pr_auc_high"} <= set(run.data.metrics)
    assert run.data.tags["best_baseline_roc_auc"] == first["versus_baseline"]["roc_auc"]["baseline"]
    # the registered model is the refit on all labelled snapshots; the metrics and the gate are the evaluated model's
    assert first["registered_model"] == "refit" and run.data.tags["registered_model"] == "refit"
    assert "before the refit" in run.data.tags["registered_model_note"]
    assert int(run.data.params["refit_rows"]) > int(run.data.params["train_rows"])
    # the churn-time curve beside the model: its booster and reading notes, and its validation metrics at the
    # horizons the validation snapshot observes in full (30, 60, 90 of a 90-day horizon; 180 is not observed)
    m = run.data.metrics
    assert {f"curve_roc_auc_{h}d" for h in (30, 60, 90)} <= set(m) and "curve_roc_auc_180d" not in m
    assert 0.5 < m["curve_roc_auc_90d"] <= 1 and 0 < m["curve_integrated_brier"] < 0.25
    assert run.data.tags["curve_model"].startswith("survival:aft (log-normal waits")
    assert run.data.params["activity_types"] == "purchase"
    assert {str(k) for k in first["curve_metrics"]} == {"30", "60", "90", "integrated_brier"}
    assert {a.path for a in client.list_artifacts(first["run_id"], "curve")} == {"curve/aft.ubj", "curve/curve.json"}
    import mlflow.xgboost

    mlflow.set_tracking_uri(uri)
    registered = mlflow.xgboost.load_model("models:/churn/1")
    evaluated = mlflow.xgboost.load_model(run.data.tags["evaluated_model_uri"])
    assert registered.get_booster().num_boosted_rounds() == evaluated.get_booster().num_boosted_rounds()
    assert registered.get_booster().save_raw("json") != evaluated.get_booster().save_raw("json")
    second_run = client.get_run(second["run_id"])
    assert second_run.data.metrics["vs_champion_roc_auc_low"] <= 0 and "champion_interval" in second_run.data.tags
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "plots")}
    assert artifacts == {"plots/roc_pr.png", "plots/gain.png", "plots/calibration.png",
                         "plots/feature_importance.png"}
    # the registered model has an explicit float64 signature over the documented features
    import mlflow

    from features.customer import FEATURE_NAMES

    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info("models:/churn@champion")
    assert [c.name for c in info.signature.inputs.inputs] == FEATURE_NAMES
    assert {c.type.name for c in info.signature.inputs.inputs} == {"double"}
    # artifacts live under the data folder, not in the working directory
    assert (store.mlflow / "artifacts").is_dir()
    # the run records the event table's version it read: that version reads back exactly, whatever came since
    from storage import store as event_store

    version, n = int(run.data.params["store_version"]), int(run.data.params["store_events"])
    extra = event_store.read_events(store).head(1).assign(event_id="after-training", ingest_batch="later")
    event_store.commit_batch(store, "later", pa.Table.from_pandas(extra, schema=STORE_SCHEMA, preserve_index=False),
                             QUARANTINE_SCHEMA.empty_table(), {}, None)
    assert event_store.store_version(store) == version + 1 and len(event_store.read_events(store)) == n + 1
    back = event_store.read_events(store, version=version)
    assert len(back) == n and "after-training" not in set(back["event_id"])


def test_train_with_as_of_uses_only_data_up_to_then(store, prefect_harness):
    r, _ = run_train(store, as_of="2024-06-01")
    assert r["validation_cutoff"] == "2024-03-03"
    assert r["as_of"].startswith("2024-06-01")


def test_models_of_different_horizons_are_never_compared_and_scores_carry_the_models_horizon(store, prefect_harness):
    """A --horizon-days experiment is registered but not compared with (nor promoted over) the champion; changing
    horizon_days in the settings replaces the champion without comparison; scores say the champion's horizon."""
    from mlflow import MlflowClient

    from flows.score import score
    from flows.train import train_flow

    uri = f"sqlite:///{store.mlflow / 'mlflow.db'}"
    quick = {"tracking_uri": uri, "n_train_cutoffs": 2, "btyd_baselines": False, "refit": False,
             "bootstrap_resamples": 200}
    first = train_flow(config(store, "train", **quick))
    assert first["alias"] == "champion"
    # `churn train --horizon-days 60` with horizon_days = 90 in the settings: an experiment
    experiment = train_flow(config(store, "train", horizon_days=60, **quick))
    assert experiment["alias"] == "challenger" and experiment["champion_before"] is None
    assert "not compared" in experiment["promotion_reason"] and "60-day" in experiment["promotion_reason"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v2 = client.get_model_version("churn", experiment["model_version"])
    assert v2.tags["horizon_days"] == "60" and v2.tags["alias_given"] == "challenger"
    assert v2.description.startswith("challenger: trained for a 60-day horizon")
    assert client.get_model_version("churn", first["model_version"]).tags["promotion_reason"] == "no champion yet"
    # horizon_days = 60 in the settings: the new horizon replaces the champion without comparison
    switched = train_flow(config(store, "train", horizon_days=60, serving_horizon_days=60, **quick))
    assert switched["alias"] == "champion" and "replaced without comparison" in switched["promotion_reason"]
    # scoring with settings that still say 90 days: the scores say the 60 days the champion predicts
    scores = score(config(store, "score", tracking_uri=uri), None, now=pd.Timestamp("2030-01-01", tz="UTC"))
    assert scores["path"]
    import pyarrow.parquet as pq

    assert set(pq.read_table(scores["path"], columns=["horizon_days"]).column(0).to_pylist()) == {60}


def test_model_settings_choose_hyperparameters_and_the_feature_set_and_the_champion_scores(store, prefect_harness):
    """Issue #14: a data scientist changes the model without editing code ([model] in churn.toml, or
    `churn train --set`); the run records it and the champion it registers scores and explains."""
    from mlflow import MlflowClient

    from churn.settings import defaults
    from flows.score import score
    from flows.train import train_flow

    uri = f"sqlite:///{store.mlflow / 'mlflow.db'}"
    chosen = ["days_since_last_purchase", "purchases_90d", "spend_365d", "complaints_90d"]
    settings = defaults(store.home, model={"max_depth": 2, "features": chosen})
    cfg = settings.train_config(model={"learning_rate": "0.2"}, tracking_uri=uri, n_train_cutoffs=2,
                                btyd_baselines=False, refit=False, bootstrap_resamples=200)
    assert cfg.model_params == {"max_depth": 2, "learning_rate": 0.2} and list(cfg.features) == chosen
    r = train_flow(cfg)
    run = MlflowClient(tracking_uri=uri).get_run(r["run_id"])
    assert run.data.params["xgb_max_depth"] == "2" and run.data.params["xgb_learning_rate"] == "0.2"
    assert run.data.params["features"] == ",".join(chosen) and run.info.run_name.endswith("depth 2 lr 0.2")
    out = score(config(store, "score", tracking_uri=uri), None, now=pd.Timestamp("2030-01-01", tz="UTC"))
    import pyarrow.parquet as pq

    reasons = pq.read_table(out["path"], columns=["reason_1_feature"]).column(0).drop_null().to_pylist()
    assert reasons and set(reasons) <= set(chosen)


def test_contacted_customers_are_flagged_left_out_of_training_by_the_setting_and_logged(store, tmp_path):
    """Stored contacts flag the snapshot rows whose label window holds one; "exclude" leaves them out of training,
    "keep" trains on them, validation never measures them; the setting and the counts are in the MLflow run."""
    from mlflow import MlflowClient

    from features.snapshots import CONTACTED
    from flows.contacts import ingest_contacts_file
    from flows.train import build_snapshots, register, train
    from storage import catalog
    from tests.conftest import NOW

    uri = f"sqlite:///{store.mlflow / 'mlflow.db'}"

    def tc(setting):
        return config(store, "train", tracking_uri=uri, n_train_cutoffs=2, btyd_baselines=False,
                      bootstrap_resamples=100, contacted_in_training=setting,
                      model={"n_estimators": 40, "max_depth": 3})

    plan, info = build_snapshots(tc("exclude"), None)
    frame = catalog.read_snapshots(Path(info["path"]))
    assert not frame[CONTACTED].any() and set(frame["split"]) == {"train", "validation"}
    first = frame[frame["cutoff"] == plan.train[0]]["customer_id"].head(30).tolist()
    valid = frame[frame["cutoff"] == plan.validation]["customer_id"].head(10).tolist()
    rows = ([(c, plan.train[0] + pd.Timedelta(days=1)) for c in first[:20]]      # inside the first window
            + [(c, plan.train[0]) for c in first[20:]]                           # at the cutoff: not inside
            + [(c, plan.validation + pd.Timedelta(days=2)) for c in valid])
    csv = tmp_path / "crm.csv"
    csv.write_text("customer_id,contacted_at,action\n" + "".join(f"{c},{t.isoformat()},call\n" for c, t in rows))
    assert ingest_contacts_file(config(store, "ingest"), csv, now=NOW)["stored"] == 40

    plan, info = build_snapshots(tc("exclude"), None)
    frame = catalog.read_snapshots(Path(info["path"]))
    flagged = frame[frame[CONTACTED]]
    at_first = flagged[flagged["cutoff"] == plan.train[0]]["customer_id"]
    assert sorted(at_first) == sorted(first[:20])  # not the ten contacted at the cutoff itself
    assert sorted(flagged[flagged["cutoff"] == plan.validation]["customer_id"]) == sorted(valid)
    assert (flagged["split"] == "excluded_contacted").all()
    assert not set(first[:20]) & set(frame[(frame["split"] == "train") & (frame["cutoff"] == plan.train[0])]
                                     ["customer_id"])
    counts = info["contacted_rows"]
    assert counts[plan.train[0].date().isoformat()] == 20 and counts[plan.validation.date().isoformat()] == 10
    result, frame = train(tc("exclude"), info)
    logged = register(tc("exclude"), result, frame, info)
    run = MlflowClient(tracking_uri=uri).get_run(logged["run_id"])
    assert run.data.params["contacted_in_training"] == "exclude"
    assert json.loads(run.data.params["contacted_rows_per_cutoff"]) == counts
    assert "contacted_rows.json" in [a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run.info.run_id)]
    assert run.data.metrics["contacted_rows"] == 30 and run.data.metrics["excluded_contacted_rows"] == 30

    _, info = build_snapshots(tc("keep"), None)
    kept = catalog.read_snapshots(Path(info["path"]))
    train_rows = kept[kept["split"] == "train"]
    assert set(first[:20]) <= set(train_rows.loc[train_rows["cutoff"] == plan.train[0], "customer_id"])
    assert (kept.loc[kept[CONTACTED] & (kept["cutoff"] == plan.validation), "split"] == "excluded_contacted").all()
    assert len(kept) == len(frame)


def test_training_cutoffs_spanning_a_year_add_the_season_inputs_which_score_but_never_explain_or_drift(
        store, prefect_harness):
    """Issue #13: with training cutoffs over a year or more the cutoff's position in the year is a model input; the
    champion scores with the scoring day's inputs, and they are never a reason nor checked for drift."""
    import pyarrow.parquet as pq
    from mlflow import MlflowClient

    from features.season import SEASON_FEATURES
    from flows.score import score
    from flows.train import train_flow
    from storage import tracking

    uri = f"sqlite:///{store.mlflow / 'mlflow.db'}"
    r = train_flow(config(store, "train", tracking_uri=uri, horizon_days=60, n_train_cutoffs=0, cutoff_step_days=45,
                          btyd_baselines=False, refit=False, bootstrap_resamples=200))
    run = MlflowClient(tracking_uri=uri).get_run(r["run_id"])
    assert run.data.params["features"].split(",")[-2:] == list(SEASON_FEATURES), sorted(run.data.params.items())
    assert set(SEASON_FEATURES).isdisjoint(tracking.load_drift_reference(r["run_id"]))
    out = score(config(store, "score", tracking_uri=uri), None, now=pd.Timestamp("2030-01-01", tz="UTC"))
    assert out["drift"]["checked"] and set(SEASON_FEATURES).isdisjoint(json.dumps(out["drift"]).split('"'))
    table = pq.read_table(out["path"])
    named = {f for i in (1, 2, 3) for f in table.column(f"reason_{i}_feature").drop_null().to_pylist()}
    assert named and named.isdisjoint(SEASON_FEATURES)
    assert table.num_rows > 0 and table.column("churn_probability").null_count == 0


def test_only_the_season_inputs_on_cutoffs_spanning_less_than_a_year_is_a_clear_error(store, prefect_harness):
    from features.season import SEASON_FEATURES
    from flows.train import train_flow
    from models.errors import UntrainableSnapshots

    uri = f"sqlite:///{store.mlflow / 'mlflow.db'}"
    cfg = config(store, "train", tracking_uri=uri, n_train_cutoffs=2, btyd_baselines=False, refit=False,
                 model={"features": list(SEASON_FEATURES)})
    with pytest.raises(UntrainableSnapshots, match="the model has no inputs"):
        train_flow(cfg)
