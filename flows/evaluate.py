"""Evaluate flow: every published scored day -> realised quality once its horizon has passed (labels from the
store, the training labels' definition), a label-free estimate while it is open, one MLflow monitoring run per
day; `churn.model.degraded` when a day's realised ROC-AUC falls below its model's training estimate."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pandas as pd
from prefect import flow, task

from churn.settings import EvaluateConfig
from features.customer import churn_labels
from flows import artifacts, events
from flows.outcomes import campaign_outcomes
from models.monitoring import degradation, expected_metrics, horizon_ends, horizon_passed, in_sample, realised
from storage import catalog, layout, store, tracking

log = logging.getLogger("churn.evaluate")

# where the campaign outcomes (target vs control of each win-back list in the campaign ledger) go in the summary
CAMPAIGN_OUTCOMES = "campaign_outcomes"
# a realised day whose outcome window lies in its model's training data says so first: optimistic, not a test
IN_SAMPLE_NOTE = {"whole": "IN-SAMPLE (the model was trained on data up to {end}, this day's whole outcome window): ",
                  "partly": "partly in-sample (the model was trained on data up to {end}, inside this day's outcome "
                            "window): "}


def evaluate(config: EvaluateConfig) -> dict:
    """Realised and estimated quality of every complete scored day; logs what is new to MLflow, once."""
    paths = layout.Paths(config.home)
    layout.require_scores(paths)  # NoScores: nothing was ever scored
    days = [d for d in catalog.published_scores(paths) if d["complete"]]
    _, last_event, _ = store.store_time_range(paths)
    experiment_id = tracking.setup(config.tracking_uri, config.experiment, paths.mlflow / "artifacts")
    logged = tracking.monitoring_runs(experiment_id)
    entries: list[dict] = []
    todo: list[tuple[dict, str | None]] = []  # (entry, run id to add to or None for a new run)
    for rec in days:
        prior = logged.get((rec["as_of"], rec["sha256"]))
        if prior is not None:
            before = tracking.load_monitoring_record(prior["run_id"])
            if before["status"] == "realised" or not horizon_passed(pd.Timestamp(before["as_of_time"]),
                                                                    before["horizon_days"], last_event):
                entries.append({**before, "logged": "already logged"})
                continue
        entry = evaluate_day(paths, config, rec, last_event)
        entry["logged"] = "realised now" if prior is not None else "new"
        entries.append(entry)
        todo.append((entry, prior["run_id"] if prior is not None else None))
    history = monitoring_history(entries)
    for entry, run_id in todo:
        entry["run_id"] = tracking.log_monitoring_run({k: v for k, v in entry.items() if k != "logged"}, run_id,
                                                      history)
        log.info("%s %s: %s", entry["as_of"], entry["logged"], day_line(entry))
    newly_degraded = [e for e, _ in todo if e.get("degradation") and e["degradation"]["degraded"]]
    for e in newly_degraded:
        log.warning("DEGRADED: %s v%s on %s: %s", e["model_name"], e["model_version"], e["as_of"],
                    e["degradation"]["message"])
    return {"experiment": config.experiment, "last_event": last_event.isoformat(), "margin": config.degradation_margin,
            "days": entries, "by_model_version": by_model_version(entries),
            "degraded": [{k: e[k] for k in ("as_of", "model_name", "model_version", "degradation")}
                         for e in newly_degraded],
            CAMPAIGN_OUTCOMES: None}  # filled by evaluate_flow (flows/outcomes.py)


def evaluate_day(paths: layout.Paths, config: EvaluateConfig, rec: dict, last_event: pd.Timestamp) -> dict:
    """One scored day: the estimate from its scores, and its realised quality if its horizon has passed."""
    scores, day = catalog.read_scores(paths, rec["as_of"])
    as_of_time = pd.Timestamp(scores["as_of_time"].iloc[0])
    horizon = int(scores["horizon_days"].iloc[0])
    version = str(scores["model_version"].iloc[0])
    name = str(scores["model_name"].iloc[0])
    p = scores["churn_probability"].to_numpy(dtype=float)
    training_auc, training_end = tracking.training_estimate(name, version)
    end = horizon_ends(as_of_time, horizon)
    entry = {"as_of": day, "as_of_time": as_of_time.isoformat(), "scores_sha256": rec["sha256"], "model_name": name,
             "model_version": version, "horizon_days": horizon, "horizon_ends": end.isoformat(),
             "customers": len(scores), "estimate": expected_metrics(p), "training_roc_auc": training_auc,
             "training_data_end": training_end, "in_sample": in_sample(as_of_time, end, training_end),
             "status": "open", "realised": None, "degradation": None}
    if not horizon_passed(as_of_time, horizon, last_event):
        return entry
    con = store.connect(paths)
    try:
        y = churn_labels(store.events_relation(con, paths), as_of_time, horizon, pd.Index(scores["customer_id"]),
                         config.activity_types).to_numpy()
    finally:
        con.close()
    entry["realised"] = realised(y, p, scores["risk_tier"].to_numpy())
    entry["status"] = "realised"
    entry["degradation"] = asdict(degradation(entry["realised"]["metrics"].get("roc_auc"), entry["training_roc_auc"],
                                              config.degradation_margin))
    return entry


def monitoring_history(entries: list[dict]) -> pd.DataFrame:
    """ROC-AUC by scored day: realised, estimated, and the training estimate (what the over-time plot shows)."""
    return pd.DataFrame([{"as_of": e["as_of"], "model_version": e["model_version"],
                          "realised_roc_auc": (e["realised"] or {}).get("metrics", {}).get("roc_auc", float("nan")),
                          "in_sample": e.get("in_sample") is not None,
                          "expected_roc_auc": e["estimate"]["roc_auc"],
                          "training_roc_auc": e["training_roc_auc"] if e["training_roc_auc"] is not None
                          else float("nan")} for e in entries])


def by_model_version(entries: list[dict]) -> list[dict]:
    """Per model version: scored days, days realised, mean realised and estimated ROC-AUC, training estimate."""
    h = monitoring_history(entries)
    if h.empty:
        return []
    g = h.groupby("model_version", sort=False)
    return [{"model_version": v, "days": int(len(part)), "days_realised": int(part["realised_roc_auc"].notna().sum()),
             "days_in_sample": int((part["in_sample"] & part["realised_roc_auc"].notna()).sum()),
             # the mean realised ROC-AUC of the out-of-sample days only: the in-sample ones are no test
             "realised_roc_auc": _num(part.loc[~part["in_sample"], "realised_roc_auc"].mean()),
             "expected_roc_auc": _num(part["expected_roc_auc"].mean()),
             "training_roc_auc": _num(part["training_roc_auc"].iloc[0])} for v, part in g]


def _num(x) -> float | None:
    return None if pd.isna(x) else float(x)


def day_line(e: dict) -> str:
    est = e["estimate"]["roc_auc"]
    if e["realised"] is None:
        return f"horizon open until {e['horizon_ends'][:10]}; estimated ROC-AUC {est:.4f}"
    auc = e["realised"]["metrics"].get("roc_auc")
    line = (f"{e['degradation']['message']}; estimated from the scores alone: {est:.4f}" if auc is not None
            else f"realised: {e['realised'].get('note')}")
    return IN_SAMPLE_NOTE.get(e.get("in_sample"), "").format(end=e.get("training_data_end")) + line


# ------------------------------------------------------------------ Prefect wiring

@task(name="evaluate-scored-days", retries=2, retry_delay_seconds=[5, 20], retry_condition_fn=tracking.retry_transient)
def evaluate_task(config: EvaluateConfig) -> dict:
    return evaluate(config)


@task(name="campaign-outcomes")
def outcomes_task(config: EvaluateConfig) -> dict:
    return campaign_outcomes(config.outcomes)


@flow(name="evaluate")
def evaluate_flow(config: EvaluateConfig) -> dict:
    """Realised (and estimated) quality of every scored day and the outcome of every win-back list whose horizon
    has passed; announce a degraded model."""
    summary = evaluate_task(config)
    summary[CAMPAIGN_OUTCOMES] = outcomes_task(config)
    artifacts.publish(artifacts.EVALUATE_KEY, artifacts.evaluate_table(summary),
                      f"Quality of {len(summary['days'])} scored days (realised once the horizon has passed, "
                      f"else estimated from the scores)")
    for d in summary["degraded"]:
        events.emit(events.DEGRADED, config.home, {"as_of": d["as_of"], "model_name": d["model_name"],
                                                   "model_version": d["model_version"], **d["degradation"]})
    return summary
