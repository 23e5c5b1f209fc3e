"""Score flow: champion model + features as of a date -> validated scores Parquet + MLflow summary."""

from __future__ import annotations

import logging

import pandas as pd
from prefect import flow, task

from churn.errors import UserError
from churn.settings import ScoreConfig, utc
from expectations.scores import SCORE_SCHEMA, SCORES_SUITE
from features.customer import FEATURE_NAMES, customer_features, feature_frame, feature_sql
from features.season import SEASON_FEATURES
from flows import artifacts, events
from ingestion.validate import contract_violations
from models.curve import AftCurve
from models.drift import drift_decision, drift_report
from models.scoring import require_buildable, score_customers, scoring_summary
from storage import catalog, engine, layout, store, tracking

log = logging.getLogger("churn.score")


class NothingToScore(UserError, RuntimeError):
    """No customer was active in the lookback before the as-of date."""


class InvalidScores(RuntimeError):
    """The scored frame broke its contract; nothing was published."""


class DriftRefused(UserError, RuntimeError):
    """Features or scores drifted beyond the threshold and the policy says not to publish."""


def score(config: ScoreConfig, as_of: pd.Timestamp | None, now: pd.Timestamp) -> dict:
    """Score every customer active in the lookback at `as_of` (default: the latest event) and publish."""
    paths = layout.Paths(config.home)
    tracking.setup(config.tracking_uri, f"{config.experiment}-scoring", paths.mlflow / "artifacts")
    model, mv = tracking.load_champion(config.model_name)
    require_buildable(model, f"{config.model_name} v{mv.version}", [*FEATURE_NAMES, *SEASON_FEATURES])
    horizon = tracking.model_horizon_days(mv)  # a model's horizon travels with it, whatever the settings say now
    if horizon is None:
        log.warning("%s v%s does not say its horizon: scored as horizon_days = %d", config.model_name, mv.version,
                    config.horizon_days)
    elif horizon != config.horizon_days:
        log.warning("the champion %s v%s predicts a %d-day horizon (horizon_days is %d): its scores say %d days",
                    config.model_name, mv.version, horizon, config.horizon_days, horizon)
        config = config.model_copy(update={"horizon_days": horizon})
    trained_on = (getattr(mv, "tags", None) or {}).get("activity_types")  # tagged since the churn-time curve
    if trained_on and config.activity_types and trained_on != ",".join(config.activity_types):
        log.warning("the champion %s v%s was trained with activity_types = %s (the setting is now %s): its "
                    "churn_probability and curve count %s as activity; retrain to change that", config.model_name,
                    mv.version, trained_on, ",".join(config.activity_types), trained_on)
    version = store.store_version(paths)  # features from one version of the event table, recorded with the scores
    if as_of is None:
        first, as_of, _ = store.store_time_range(paths, version)
    else:
        first, _, _ = store.require_covered(paths, as_of, version)
    log.info("building features as of %s (customers active in the last %d days)",
             pd.Timestamp(as_of).strftime("%Y-%m-%d %H:%M:%S UTC"), config.lookback_days)
    with engine.events_on(config.engine, paths, config.spark_master, version) as events_table:
        if config.engine == "spark":  # one feature query, kept on Spark for scoring and read here for drift
            on_spark = events_table.frame(feature_sql(as_of, config.lookback_days, "spark")).cache()
            feats = feature_frame(on_spark.toArrow().to_pandas())
        else:
            feats = customer_features(events_table, as_of, config.lookback_days)
    if feats.empty:
        first, last, _ = store.store_time_range(paths)
        raise NothingToScore(f"no customer was active in the {config.lookback_days} days before {as_of.date()}: "
                             f"nothing to score (the store holds events from {first.date()} to {last.date()})")
    meta = {"model_name": config.model_name, "model_version": mv.version, "run_id": mv.run_id}
    log.info("scoring %s customers with %s v%s (%d-day horizon%s), exact reasons for %s", f"{len(feats):,}",
             config.model_name, mv.version, config.horizon_days, ", on Spark" if config.engine == "spark" else "",
             "all of them" if config.exact_reasons_top_n >= len(feats)
             else f"the top {config.exact_reasons_top_n:,} by value at risk")
    logged = tracking.load_curve(mv.run_id) if mv.run_id else None
    curve = AftCurve.from_artifact(*logged) if logged else None
    if config.engine == "spark":  # predictions and reasons by partition on Spark: the same scores
        from models.spark_scoring import score_on_spark

        scores = score_on_spark(on_spark, model, as_of, config.policy(), meta, scored_at=now, peers=feats,
                                curve=curve)
        on_spark.unpersist()
    else:
        scores = score_customers(model, feats, as_of, config.policy(), meta, scored_at=now, curve=curve)
    log.info("checking drift and the scores contract, then publishing")

    reference = tracking.load_drift_reference(mv.run_id)
    drift = ({"checked": False, "drifted": False, "note": f"no drift reference in run {mv.run_id}"}
             if reference is None else {"checked": True, **drift_report(
                 reference, scores_with_features(feats, scores), config.drift_threshold,
                 history_days=(as_of - first) / pd.Timedelta(days=1))})
    decision = drift_decision(drift, config.drift_action)
    if decision.warn:
        log.warning("DRIFT: %s", decision.message)
    if not decision.publish:
        raise DriftRefused(decision.message)

    violations, gx = contract_violations(scores, now, suite_path=SCORES_SUITE)
    if violations.notna().any():
        bad = violations.dropna()
        raise InvalidScores(f"{len(bad)} scored rows break the scores contract, e.g. {bad.iloc[0]!r}; "
                            f"nothing published")
    day = pd.Timestamp(as_of).date().isoformat()
    path, record = catalog.write_scores(paths, scores, SCORE_SCHEMA, day, config.currency, version)
    summary = {**scoring_summary(scores, day, mv), "path": str(path), "sha256": record["sha256"],
               "schema_version": record["schema_version"], "validation": gx, "drift": drift}
    summary["run_id"] = tracking.log_scoring_run(scores, summary)
    return summary


def scores_with_features(feats: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The feature table with each customer's churn_probability beside it (what drift is measured on)."""
    p = scores.set_index("customer_id")["churn_probability"].reindex(feats.index)
    return feats.assign(churn_probability=p.to_numpy())


# ------------------------------------------------------------------ Prefect wiring

@task(name="score-customers", retries=3, retry_delay_seconds=[5, 20, 60],
      retry_condition_fn=tracking.retry_transient)
def score_task(config: ScoreConfig, as_of: str | None) -> dict:
    return score(config, utc(as_of) if as_of else None, now=pd.Timestamp.now(tz="UTC"))


@flow(name="score", flow_run_name=artifacts.score_run_name)
def score_flow(config: ScoreConfig, as_of: str | None = None) -> dict:
    """Score all active customers with the champion model and publish the scores Parquet; announce the day."""
    summary = score_task(config, as_of)
    artifacts.publish(artifacts.SCORE_KEY, artifacts.score_table(summary),
                      f"Scores as of {summary['as_of']} ({summary['customers']:,} customers, "
                      f"{summary['model_name']} v{summary['model_version']}): {summary['path']}")
    events.emit(events.SCORED, config.home, {"as_of": summary["as_of"], "path": summary["path"],
                                             "model_version": summary["model_version"],
                                             "customers": summary["customers"]})
    return summary
