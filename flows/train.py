"""Train flow: stacked snapshots -> XGBoost + baselines -> MLflow run, registry version and alias."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import TrainConfig, utc
from features.season import MIN_SPAN_DAYS, SEASON_FEATURES, model_features, span_days
from features.snapshots import contacted_counts, split_by_plan, stacked_snapshots
from flows import artifacts, events
from models.errors import UntrainableSnapshots
from models.evaluate import covering
from models.promotion import ChampionScore, Verdict, champion_interval, champion_score, horizon_decision, should_promote
from models.snapshots import CutoffPlan, history_note, plan_cutoffs
from models.train import TrainingResult, check_labels, evaluate, fit_curve, fit_on_driver, refit_on_all_labelled
from storage import catalog, contacts, engine, layout, store, tracking

log = logging.getLogger("churn.train")


def build_snapshots(config: TrainConfig, as_of: pd.Timestamp | None) -> tuple[CutoffPlan, dict]:
    """Plan the cutoffs, build and store the labelled snapshots; returns the plan and what was written."""
    paths = layout.Paths(config.home)
    engine.require_trainable(config.engine, config.spark_master)  # before hours of snapshots, not after
    version = store.store_version(paths)  # every read below is of this version: the run can be read back exactly
    first, last, n_events = store.store_time_range(paths, version)
    as_of = utc(as_of) if as_of is not None else last
    store.require_not_after(first, last, as_of)
    plan = plan_cutoffs(first, as_of, config.horizon_days, config.n_train_cutoffs, config.cutoff_step_days,
                        config.min_history_days)
    log.info("building labelled snapshots from %s events (%s..%s): %d training cutoffs, validation %s, "
             "%d-day horizon", f"{n_events:,}", first.date(), last.date(), len(plan.train), plan.validation.date(),
             config.horizon_days)
    contacted = contacts.read_contacts(paths)[["customer_id", "contacted_at"]]
    with engine.events_on(config.engine, paths, config.spark_master, version) as events_table:
        frame = stacked_snapshots(events_table, [*plan.train, plan.validation], config.horizon_days,
                                  config.lookback_days, config.activity_types, contacted, until=as_of)
    frame = split_by_plan(frame, plan, config.contacted_in_training)
    path = catalog.write_snapshots(paths, frame, as_of, config.horizon_days)
    counts = contacted_counts(frame)
    log.info("snapshots: %s rows; contacted in their label window: %s (%s from training, and from validation)",
             f"{len(frame):,}", sum(counts.values()),
             "excluded" if config.contacted_in_training == "exclude" else "kept")
    info = {"path": str(path), "as_of": as_of.isoformat(), "data_start": first.isoformat(),
            "data_end": last.isoformat(), "n_events": n_events, "store_version": version, **plan.as_params(),
            "history_note": history_note(plan, first, config.lookback_days), "contacted_rows": counts}
    return plan, info


def train(config: TrainConfig, info: dict) -> tuple[TrainingResult, pd.DataFrame]:
    """Fit the model and the baselines on the stored snapshots (the oracle joins where ground truth covers them);
    with `config.refit`, also the model to register, refitted on all labelled snapshots."""
    paths = layout.Paths(config.home)
    frame = catalog.read_snapshots(Path(info["path"]))
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    oracles = generated_data_oracles(paths, pd.Timestamp(info["validation_cutoff"], tz="UTC"), config.horizon_days,
                                     validation["customer_id"], info["n_events"])
    log.info("training XGBoost on %s rows and the baselines (%s); validating on %s customers", f"{len(train):,}",
             "on Spark" if config.engine == "spark" else "in this process", f"{len(validation):,}")
    check_labels(train, validation)
    features = model_features(config.features, train["cutoff"])
    if not features:  # `[model] features` listed only the season inputs, which these cutoffs do not use
        raise UntrainableSnapshots(f"the model has no inputs: the features {list(config.features)} are the season "
                                   f"inputs, used only when the training cutoffs span {MIN_SPAN_DAYS} days or more "
                                   f"(these span {span_days(train['cutoff']):.0f}); list customer features too")
    if set(SEASON_FEATURES) & set(features):
        log.info("the training cutoffs span %d days: the cutoff's position in the year is a model input",
                 span_days(train["cutoff"]))
    if config.engine == "spark":  # the estimators run over the snapshots on Spark; evaluation is the same code
        from models.spark_model import fit_on_spark, refit_on_spark
        from storage import spark

        session = engine.spark_session(config.spark_master)
        stored, workers = spark.snapshots(session, info["path"]), spark.task_slots(session)
        fitted = fit_on_spark(stored.where("split = 'train'"), features, seed=config.seed,
                              horizon_days=config.horizon_days, model_params=config.model_params, num_workers=workers)
    else:
        fitted = fit_on_driver(train, features, seed=config.seed, horizon_days=config.horizon_days,
                               model_params=config.model_params)
    result = evaluate(fitted, validation, seed=config.seed, horizon_days=config.horizon_days,
                      btyd=config.btyd_baselines, btyd_sample=config.btyd_sample_customers,
                      bootstrap=config.bootstrap(), oracles=oracles)
    if config.refit:  # the metrics stay the evaluated model's: the refit has seen the validation labels
        if config.engine == "spark":  # a second Spark fit: its own progress line
            log.info("refitting on the training and validation snapshots with %d trees (on Spark)",
                     result.model.best_iteration_ + 1)
        result.refit = (refit_on_spark(stored.where("split IN ('train', 'validation')"), result.model,
                                       num_workers=workers) if config.engine == "spark"
                        else refit_on_all_labelled(result.model, train, validation))
    log.info("fitting the churn-time curve (XGBoost survival:aft on the days to the next activity): evaluated on "
             "the waits known at the validation cutoff, then refitted on every wait known")
    result.curve, result.evaluated_curve, result.curve_metrics = fit_curve(
        train, validation, features, seed=config.seed, horizon_days=config.horizon_days)
    return result, frame


ORACLE_EVENTS_MAX_EVENTS = 20_000_000  # the events-only oracle reads every customer-day: skipped on larger stores


def generated_data_oracles(paths: layout.Paths, cutoff: pd.Timestamp, horizon_days: int, customer_ids: pd.Series,
                           n_events: int) -> dict[str, pd.Series]:
    """On generated data (ground truth stored), the two bounds of simulator/oracle.py for the validation customers:
    `oracle` (knows the hidden state) and `oracle_events` (the same parameters, the state inferred from the events)."""
    truth = catalog.read_truth(paths)
    if truth is None:
        return {}
    from simulator.oracle import events_only_probability, no_purchase_probability

    oracle = covering(no_purchase_probability(truth, cutoff, horizon_days), customer_ids)
    if oracle is None:
        log.warning("ground truth does not cover the validation customers: oracles not reported")
        return {}
    out = {"oracle": oracle}
    if n_events <= ORACLE_EVENTS_MAX_EVENTS:
        days = store.customer_days(paths, pd.Timestamp(truth["sim_start"].iloc[0]), cutoff)
        out["oracle_events"] = events_only_probability(truth, days, cutoff, horizon_days)
    else:
        log.info("events-only oracle skipped: %s events (it is computed up to %s)", f"{n_events:,}",
                 f"{ORACLE_EVENTS_MAX_EVENTS:,}")
    return out


def judge(config: TrainConfig, result: TrainingResult, validation: pd.DataFrame) -> Verdict:
    """The current champion (as it was evaluated, before any refit) scored on our validation snapshot, and the
    promotion rule applied to the paired bootstrap interval of candidate minus champion (called again under the
    promotion lock if the champion changed)."""
    current = tracking.champion_version(config.model_name)
    champion = ChampionScore(None)
    if current is not None:
        other = horizon_decision(config.horizon_days, tracking.model_horizon_days(current),
                                 config.serving_horizon_days, current.version)
        if other is not None:
            return Verdict(current.version, ChampionScore(None, f"champion v{current.version} predicts another "
                                                                f"horizon"), other)
        try:
            model = tracking.load_evaluated(config.model_name, current.version)
            champion = champion_score(model, current.version, validation)
        except tracking.ChampionUnreadable as e:  # replaced by the new model, and the run says why
            champion = ChampionScore(None, f"champion v{current.version} could not be evaluated: {e}")
    interval = champion_interval(result.predictions["y"].to_numpy(), result.predictions["model"].to_numpy(), champion,
                                 config.bootstrap())
    return Verdict(current.version if current is not None else None, champion,
                   should_promote(result.metrics, champion, interval))


def register(config: TrainConfig, result: TrainingResult, frame: pd.DataFrame, info: dict) -> dict:
    """Log the run, register the model, and make it champion only if it beats the champion at the moment
    the alias moves (judged again if another run promoted meanwhile)."""
    tracking.setup(config.tracking_uri, config.experiment, layout.Paths(config.home).mlflow / "artifacts")
    validation = frame[frame["split"] == "validation"]
    log.info("comparing with the champion on the same snapshot; logging the run and registering the model")
    return tracking.log_training_run(result, frame, info, config, judge(config, result, validation),
                                     judge=lambda: judge(config, result, validation))


# ------------------------------------------------------------------ Prefect wiring

@task(name="build-snapshots")
def build_snapshots_task(config: TrainConfig, as_of: str | None) -> dict:
    return build_snapshots(config, pd.Timestamp(as_of) if as_of else None)[1]


@task(name="train-and-register", retries=3, retry_delay_seconds=[5, 20, 60],
      retry_condition_fn=tracking.retry_transient)
def train_and_register_task(config: TrainConfig, info: dict) -> dict:
    result, frame = train(config, info)
    return register(config, result, frame, info)


@flow(name="train", flow_run_name=artifacts.train_run_name)
def train_flow(config: TrainConfig, as_of: str | None = None) -> dict:
    """Build labelled snapshots, train and evaluate against baselines, log and register in MLflow."""
    info = build_snapshots_task(config, as_of)
    result = train_and_register_task(config, info)
    artifacts.publish(artifacts.TRAIN_KEY, artifacts.train_table(result),
                      f"Validation snapshot {info['validation_cutoff'][:10]}: the model beside the baselines; "
                      f"{result['promotion_reason']}")
    if result["alias"] == tracking.CHAMPION:
        events.emit(events.PROMOTED, config.home, {"model_name": config.model_name,
                                                   "model_version": result["model_version"],
                                                   "run_id": result["run_id"]})
    return result


def summary_json(result: dict) -> str:
    keys = ("run_id", "model_version", "alias", "promotion_reason", "champion_interval", "metrics", "baselines",
            "versus_baseline", "registered_model", "curve_metrics")
    return json.dumps({k: result[k] for k in keys}, indent=2)
