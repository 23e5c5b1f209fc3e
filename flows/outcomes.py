"""Campaign outcomes: each recorded win-back list whose horizon has passed -> target vs control table, plot, MLflow."""

from __future__ import annotations

import logging

import pandas as pd

from churn.settings import OutcomesConfig
from models.outcomes import campaign_outcome, customer_outcomes, horizon_passed, records
from storage import catalog, layout, store, tracking

log = logging.getLogger("churn.outcomes")


def campaign_outcomes(config: OutcomesConfig, list_ids: list[str] | None = None, log_runs: bool = True) -> dict:
    """The outcome of every list in the campaign ledger (or of `list_ids`) whose outcome window has passed:
    retention and spend in the window, target vs control by assigned group, overall and per tier, first reason's
    category and action, with intervals; lists still inside their window are listed under `skipped` with why.
    With `log_runs`, each outcome is logged once to the `churn-campaigns` MLflow experiment."""
    paths = layout.Paths(config.home)
    lists = catalog.campaign_lists(paths)
    if list_ids is not None:
        lists = [catalog.list_record(paths, i) for i in list_ids]
    _, last, _ = store.store_time_range(paths)
    log.info("%d win-back list(s) in the campaign ledger; events up to %s", len(lists),
             last.strftime("%Y-%m-%d %H:%M UTC"))
    done, skipped = [], []
    for record in lists:
        try:
            as_of, horizon = catalog.list_cutoff(paths, record)
        except catalog.UnknownList as e:
            skipped.append({"list_id": record["list_id"], "as_of": record["as_of"], "reason": str(e)})
            log.warning("skipped %s", e)
            continue
        end = as_of + pd.Timedelta(days=horizon)
        if not horizon_passed(as_of, horizon, last):
            why = (f"its {horizon}-day outcome window ends {end:%Y-%m-%d %H:%M} UTC, after the last stored event "
                   f"({last:%Y-%m-%d %H:%M} UTC): not measurable yet")
            skipped.append({"list_id": record["list_id"], "as_of": record["as_of"], "horizon_days": horizon,
                            "window_end": end.isoformat(), "reason": why})
            log.info("skipped list %s: %s", record["list_id"], why)
            continue
        listed = catalog.read_list(paths, record)
        log.info("list %s: %s target and %s control customers, activity in (%s, %s]", record["list_id"],
                 f"{int((listed['group'] == 'target').sum()):,}", f"{int((listed['group'] == 'control').sum()):,}",
                 f"{as_of:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}")
        activity = store.window_activity(paths, listed["customer_id"], as_of, end, config.activity_types)
        outcomes = customer_outcomes(listed, activity)
        table = records(campaign_outcome(outcomes, config.confidence))
        entry = {"list_id": record["list_id"], "as_of": record["as_of"], "as_of_time": as_of.isoformat(),
                 "horizon_days": horizon, "window_end": end.isoformat(), "activity_types": list(config.activity_types),
                 "confidence": config.confidence, "currency": record.get("currency"),
                 "model_versions": record.get("model_versions", []), "overall": table[0], "table": table}
        truth = catalog.read_campaign_truth(paths, record["list_id"])
        if truth is not None:  # generated data: what the simulator says the campaign really did
            entry["simulated_truth"] = truth[1]["target"]
        if log_runs:
            from models import plots

            fig = plots.campaign_retention_figure(outcomes, f"list {record['list_id']} ({horizon}-day window)",
                                                  config.confidence)
            entry["mlflow_run_id"], entry["logged_now"] = tracking.log_campaign_outcome(
                config.tracking_uri, paths.mlflow / "artifacts", entry, fig)
            plots.plt.close(fig)
        done.append(entry)
    return {"last_event": last.isoformat(), "lists": done, "skipped": skipped}
