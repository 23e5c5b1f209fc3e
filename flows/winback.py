"""Win-back flow: a day's scores -> ranked list with reasons and actions, as Parquet and safe CSV."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import WinbackConfig, pseudonym_key
from expectations.winback import WINBACK_SCHEMA
from flows import artifacts
from models.winback import (
    campaign_sheet,
    check_currency,
    hold_out,
    ledger_record,
    list_id,
    pseudonymise,
    select_winback,
    winback_summary,
)
from storage import catalog, layout, tracking
from storage.contacts import contact_history

log = logging.getLogger("churn.winback")


def winback(config: WinbackConfig, as_of_date: str | None, contacts_file: Path | None = None,
            pseudonymised: bool = False) -> dict:
    """Select and write the win-back list for a scored day (default: the latest)."""
    paths = layout.Paths(config.home)
    scores, day = catalog.read_scores(paths, as_of_date)
    policy = config.policy()
    check_currency(catalog.scores_currency(paths, day), policy.currency, day)
    # the stored contacts (`churn contacts ingest`) and any --contacts file: both count for the cooldown
    contacts = contact_history(paths, contacts_file)
    key = list_id(day, policy.list_name)  # the same for the pseudonymised copy: the same customers held out
    selection = select_winback(scores, policy, contacts, key)
    # drawn on the real ids; a customer of an earlier write of this list keeps its group
    chosen = hold_out(selection.chosen, key, policy.control_share, catalog.list_groups(paths, day, policy.list_name))
    selection = selection._replace(chosen=chosen)
    name = policy.list_name
    if pseudonymised:
        chosen["customer_id"] = pseudonymise(chosen["customer_id"], pseudonym_key())
        name += "-pseudonymised"  # beside the list with real ids, never in its place
    summary = winback_summary(selection, day, policy.currency)
    log.info("win-back list %s for %s: %s; %d held out as control", name, day, summary["selection"],
             summary["control"])
    pq_path, csv_path = catalog.write_winback(paths, name, chosen, campaign_sheet(chosen, policy.currency),
                                              WINBACK_SCHEMA, day)
    catalog.record_list(paths, ledger_record(summary, policy, chosen, name, {
        "pseudonymised": pseudonymised, "contact_history": str(contacts_file) if contacts_file else None,
        "contacts_considered": 0 if contacts is None else len(contacts),
        "parquet": str(pq_path), "csv": str(csv_path), "written_at": pd.Timestamp.now(tz="UTC").isoformat()}))
    return {**summary, "parquet": str(pq_path), "csv": str(csv_path)}


@task(name="write-winback-list", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=tracking.retry_transient)
def winback_task(config: WinbackConfig, as_of: str | None, contacts: str | None, pseudonymised: bool) -> dict:
    return winback(config, as_of, Path(contacts) if contacts else None, pseudonymised)


@flow(name="winback", flow_run_name=artifacts.winback_run_name)
def winback_flow(config: WinbackConfig, as_of: str | None = None, contacts: str | None = None,
                 pseudonymised: bool = False) -> dict:
    """Write the win-back list of a scored day."""
    summary = winback_task(config, as_of, contacts, pseudonymised)
    artifacts.publish(artifacts.WINBACK_KEY, artifacts.winback_table(summary),
                      f"Top {artifacts.WINBACK_ROWS} of the win-back list for {summary['as_of']} "
                      f"({summary['customers']:,} customers; {summary['selection']}): {summary['csv']}")
    return summary
