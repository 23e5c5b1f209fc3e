"""Train flow: stacked snapshots -> XGBoost + baselines -> MLflow run, registry version and alias."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import utc
from features.customer import FEATURE_NAMES, FEATURES
from features.snapshots import stacked_snapshots
from flows import events
from models.drift import reference_bins
from models.snapshots import CutoffPlan, plan_cutoffs
from models.train import TrainingResult, train_and_evaluate
from storage import catalog, layout, store, tracking

log = logging.getLogger("churn.train")
PRIMARY_METRIC = "roc_auc"  # higher is better; decides champion vs challenger
ORACLE_MIN_COVERAGE = 0.99
DRIFT_REFERENCE = "drift_reference.json"


def snapshot_digest(frame: pd.DataFrame) -> str:
    """A content digest of a whole snapshot (MLflow's own digest reads only the first 10k rows)."""
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(h.tobytes()).hexdigest()[:16]


def build_snapshots(paths: layout.Paths, as_of: pd.Timestamp | None, horizon_days: int, lookback_days: int,
                    n_train: int, step_days: int, activity_types: tuple[str, ...]) -> tuple[CutoffPlan, dict]:
    """Plan the cutoffs, build and store the labelled snapshots; returns the plan and what was written."""
    first, last, n_events = store.store_time_range(paths)
    as_of = utc(as_of) if as_of is not None else last
    plan = plan_cutoffs(first, as_of, horizon_days, n_train, step_days)
    con = store.connect(paths)
    try:
        events = store.events_relation(con, paths)
        frame = stacked_snapshots(events, [*plan.train, plan.validation], horizon_days, lookback_days, activity_types)
    finally:
        con.close()
    frame["split"] = (frame["cutoff"] == plan.validation).map({True: "validation", False: "train"})
    path = catalog.write_snapshots(paths, frame, as_of, horizon_days)
    info = {"path": str(path), "as_of": as_of.isoformat(), "data_start": first.isoformat(),
            "data_end": last.isoformat(), "n_events": n_events, **plan.as_params()}
    return plan, info


def oracle_for(paths: layout.Paths, validation: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int):
    """The simulator's oracle on the validation customers, when ground truth covers them."""
    truth = catalog.read_truth(paths)
    if truth is None:
        return None
    from simulator.oracle import no_purchase_probability

    oracle = no_purchase_probability(truth, cutoff, horizon_days)
    coverage = validation["customer_id"].isin(oracle.index).mean()
    if coverage < ORACLE_MIN_COVERAGE:
        log.warning("ground truth covers only %.1f%% of validation customers: oracle not reported", 100 * coverage)
        return None
    return oracle


def _champion_score(model_name: str, validation: pd.DataFrame) -> tuple[float | None, str | None]:
    """The current champion's primary metric on this validation snapshot (None if there is no usable one)."""
    from models.evaluate import metrics

    mv = tracking.champion_version(model_name)
    if mv is None:
        return None, None
    try:
        model, _ = tracking.load_champion(model_name)
        names = list(model.get_booster().feature_names or [])
        if names != [c for c in names if c in validation.columns] or not names:
            return None, f"champion v{mv.version} uses other features; it cannot be compared"
        p = model.predict_proba(validation[names].astype("float64"))[:, 1]
        return metrics(validation["churned"].to_numpy(), p)[PRIMARY_METRIC], None
    except tracking.TrackingUnavailable:
        raise  # a silent server says nothing about the champion; never promote on that
    except Exception as e:  # noqa: BLE001 - an unusable champion is replaced, and we say why
        return None, f"champion v{mv.version} could not be evaluated: {e}"


def log_training(result: TrainingResult, frame: pd.DataFrame, info: dict, *, horizon_days: int, lookback_days: int,
                 seed: int, model_name: str, tracking_uri: str, experiment: str, artifact_root: Path) -> dict:
    """Log the run to MLflow, register the model, give it `champion` only if it beats the current one."""
    tracking.setup(tracking_uri, experiment, artifact_root)
    train = frame[frame["split"] == "train"]
    validation = frame[frame["split"] == "validation"]
    champion_metric, champion_note = _champion_score(model_name, validation)
    with tracking.reachable(tracking_uri, "logging and registering the model",
                            "no alias was moved: the champion is unchanged"):
        return _log_and_register(result, frame, info, train, validation, champion_metric, champion_note,
                                 horizon_days=horizon_days, lookback_days=lookback_days, seed=seed,
                                 model_name=model_name, experiment=experiment, tracking_uri=tracking_uri)


def _log_and_register(result, frame, info, train, validation, champion_metric, champion_note, *, horizon_days,
                      lookback_days, seed, model_name, experiment, tracking_uri) -> dict:
    import mlflow
    import mlflow.xgboost
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from models import plots

    data_range = f"{info['data_start'][:10]}..{info['data_end'][:10]}"
    with mlflow.start_run() as run:
        mlflow.set_tags({"code_version": tracking.code_version(), "data_range": data_range,
                         "primary_metric": PRIMARY_METRIC})
        mlflow.log_params({
            "horizon_days": horizon_days, "lookback_days": lookback_days, "seed": seed,
            "train_cutoffs": info["train_cutoffs"], "validation_cutoff": info["validation_cutoff"],
            "as_of": info["as_of"], "data_start": info["data_start"], "data_end": info["data_end"],
            "features": ",".join(result.model.features), "n_features": len(result.model.features),
            "snapshot_digest": snapshot_digest(frame[[c for c in frame.columns if c != "cutoff"]]),
            "best_iteration": result.model.best_iteration_,
            **{f"xgb_{k}": v for k, v in result.model.params.items()}, **result.sizes,
        })
        mlflow.log_metrics({f"val_{k}": v for k, v in result.metrics.items()})
        for name, m in result.baselines.items():
            mlflow.log_metrics({f"{name}_{k}": v for k, v in m.items()})
        if champion_metric is not None:
            mlflow.log_metric(f"champion_{PRIMARY_METRIC}_same_snapshot", champion_metric)
        logged = train.drop(columns=["cutoff"]).astype({"churned": "float64"})
        dataset = mlflow.data.from_pandas(logged, name="training_snapshots", targets="churned",
                                          digest=snapshot_digest(logged))
        mlflow.log_input(dataset, context="training")
        for fname, fig in (("roc_pr.png", plots.roc_pr_figure(result.predictions)),
                           ("gain.png", plots.gain_figure(result.predictions)),
                           ("calibration.png", plots.calibration_figure(result.predictions)),
                           ("feature_importance.png", plots.importance_figure(result.model.feature_importance()))):
            mlflow.log_figure(fig, f"plots/{fname}")
            plots.plt.close(fig)
        mlflow.log_dict({"model": result.metrics, "baselines": result.baselines}, "metrics.json")
        mlflow.log_dict({k: {"meaning": v[0], "unit": v[1]} for k, v in FEATURES.items()}, "features.json")
        # what the features and scores looked like at training time, for drift checks when scoring
        reference = validation[result.model.features].assign(churn_probability=result.predictions["model"].to_numpy())
        mlflow.log_dict(reference_bins(reference), DRIFT_REFERENCE)
        X_example = validation[result.model.features].head(5).astype("float64")
        signature = infer_signature(X_example, result.model.predict_proba(X_example).to_numpy())
        info_model = mlflow.xgboost.log_model(
            result.model.model_, name="model", signature=signature, input_example=None,
            pip_requirements=_pip_requirements(), registered_model_name=model_name, model_format="ubj")
        version = str(info_model.registered_model_version)
        new_metric = result.metrics[PRIMARY_METRIC]
        promote = champion_metric is None or new_metric > champion_metric
        alias = tracking.CHAMPION if promote else tracking.CHALLENGER
        mlflow.set_tag("alias", alias)
        if champion_note:
            mlflow.set_tag("champion_note", champion_note)
        run_id = run.info.run_id
    # The alias moves only after the run and the model version are complete: never a half-registered champion.
    MlflowClient().set_registered_model_alias(model_name, alias, version)
    return {"run_id": run_id, "model_version": version, "alias": alias, "metrics": result.metrics,
            "baselines": result.baselines, "champion_before": champion_metric, "champion_note": champion_note,
            "experiment": experiment, "tracking_uri": tracking_uri, **info, **result.sizes}


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"xgboost-cpu=={version('xgboost-cpu')}", f"pandas=={version('pandas')}",
            f"numpy=={version('numpy')}", f"mlflow=={version('mlflow')}"]


# ------------------------------------------------------------------ Prefect wiring

@task(name="build-snapshots")
def build_snapshots_task(home: str, as_of: str | None, horizon_days: int, lookback_days: int, n_train: int,
                         step_days: int, activity_types: list[str]) -> dict:
    _, info = build_snapshots(layout.Paths(Path(home)), pd.Timestamp(as_of) if as_of else None, horizon_days,
                              lookback_days, n_train, step_days, tuple(activity_types))
    return info


@task(name="train-and-log", retries=3, retry_delay_seconds=[5, 20, 60], retry_condition_fn=tracking.retry_transient)
def train_and_log_task(home: str, info: dict, horizon_days: int, lookback_days: int, seed: int, model_name: str,
                       tracking_uri: str, experiment: str) -> dict:
    paths = layout.Paths(Path(home))
    frame = catalog.read_snapshots(Path(info["path"]))
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    oracle = oracle_for(paths, validation, pd.Timestamp(info["validation_cutoff"], tz="UTC"), horizon_days)
    result = train_and_evaluate(train, validation, FEATURE_NAMES, seed=seed, oracle=oracle)
    return log_training(result, frame, info, horizon_days=horizon_days, lookback_days=lookback_days, seed=seed,
                        model_name=model_name, tracking_uri=tracking_uri, experiment=experiment,
                        artifact_root=paths.mlflow / "artifacts")


@flow(name="train")
def train_flow(home: str, tracking_uri: str, as_of: str | None = None, horizon_days: int = 90,
               lookback_days: int = 365, n_train_cutoffs: int = 4, cutoff_step_days: int = 30,
               activity_types: list[str] | None = None, seed: int = 42, model_name: str = "churn",
               experiment: str = "churn") -> dict:
    """Build labelled snapshots, train and evaluate against baselines, log and register in MLflow."""
    info = build_snapshots_task(home, as_of, horizon_days, lookback_days, n_train_cutoffs, cutoff_step_days,
                                activity_types or ["purchase"])
    result = train_and_log_task(home, info, horizon_days, lookback_days, seed, model_name, tracking_uri, experiment)
    if result["alias"] == tracking.CHAMPION:
        events.emit(events.PROMOTED, home, {"model_name": model_name, "model_version": result["model_version"],
                                            "run_id": result["run_id"]})
    return result


def summary_json(result: dict) -> str:
    keys = ("run_id", "model_version", "alias", "metrics", "baselines")
    return json.dumps({k: result[k] for k in keys}, indent=2)
