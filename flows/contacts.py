"""Contacts flow: CRM contact exports -> validated, de-duplicated contacts in the store, bad rows quarantined."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import IngestConfig
from flows import artifacts
from flows.ingest import consume_landed, open_landed, reject_file
from ingestion import accounting
from ingestion.contacts import prepare_contacts
from storage import contacts, layout, sources, store, tracking

log = logging.getLogger("churn.contacts")


def ingest_contacts_file(config: IngestConfig, file: Path, *, now: pd.Timestamp, force: bool = False,
                         wait: bool = False) -> dict:
    """Ingest one contact export; returns its summary. Rows in = stored + quarantined + duplicates.

    Like `flows.ingest.ingest_file`: content already ingested is skipped (`force` re-reads it, its rows then
    duplicates); a file that cannot be read, or lacks the required columns, is moved (from landing/contacts/)
    or copied (named elsewhere) to rejected/ with its error, and the other files go on; a file still being
    written is left for later ("waiting"). Only an environment error (disk full, read-only) raises.
    """
    paths, file = layout.Paths(config.home), Path(file)
    summary, landed = open_landed(config, file, "contacts", wait)
    if landed is None:
        return summary
    sha, name = summary["sha256"], summary["file"]
    skipped = {**summary, "status": "skipped", "error": None, "note": "same content already ingested"}
    if not force and contacts.ledger_entry(paths, sha):
        consume_landed(paths, file, landed, paths.landing_contacts)
        return skipped
    batch_id = f"contacts-{now.strftime('%Y%m%dT%H%M%S%f')}-{sha[:12]}"
    try:
        src = sources.read_source(file, landed.data, landed.content)
        prepared = prepare_contacts(src.frame, src.bad_lines, timezone=config.timezone,
                                    max_time=now + pd.Timedelta(hours=config.future_tolerance_hours))
        table = contacts.contacts_table(prepared.events, batch_id)
        quarantine = accounting.quarantine_table(prepared.quarantine, batch_id, name, now)
    except Exception as e:  # noqa: BLE001 - one bad file must never stop the others
        if sources.needs_a_person(e):
            raise
        return reject_file(paths, file, summary, e, now, landed, paths.landing_contacts)
    with store.store_lock(paths):
        store.recover(paths)
        if not force and contacts.ledger_entry(paths, sha):
            consume_landed(paths, file, landed, paths.landing_contacts)
            return skipped
        known = contacts.stored_ids_among(paths, prepared.events["contact_id"])
        hit = prepared.events["contact_id"].isin(known)
        stored_duplicates = int(prepared.events.loc[hit, "_rows"].sum())
        prepared.events = prepared.events[~hit].reset_index(drop=True)
        try:
            result = accounting.file_summary(summary, prepared, stored_duplicates, batch_id, now)
        except accounting.AccountingError as e:  # a bug; this file's batch is never published
            return reject_file(paths, file, summary, e, now, landed, paths.landing_contacts)
        result["contacts_stored"] = result.pop("events_stored")
        contacts.commit_batch(paths, batch_id, contacts.without_ids(table, known), quarantine, result, sha)
    consume_landed(paths, file, landed, paths.landing_contacts)
    return result


def ingest_contacts(config: IngestConfig, files: list[str] | None = None, force: bool = False) -> dict:
    """Ingest the given contact files, or every new file in `<home>/landing/contacts/`; the run summary."""
    paths = layout.Paths(config.home)
    now = pd.Timestamp.now(tz="UTC")
    if files:
        targets, refused = [Path(f) for f in files], []
    else:
        scan = sources.landing_scan(paths, paths.landing_contacts)
        targets = scan.files
        refused = [accounting.refused_file(sources.display_name(p), why) for p, why in scan.refused]
    results = list(refused)
    for k, f in enumerate(targets, 1):
        log.info("ingesting contacts %s (file %d of %d)", Path(f).name, k, len(targets))
        r = ingest_contacts_file(config, Path(f), now=now, force=force, wait=bool(files))
        log.info("  %s: %s rows in, %s stored, %s quarantined, %s duplicates", r.get("status"), f"{r['rows_in']:,}",
                 f"{r['stored']:,}", f"{r['quarantined']:,}", f"{r['duplicates']:,}")
        results.append(r)
    return accounting.totals(results)


# ------------------------------------------------------------------ Prefect wiring

@task(name="ingest-contacts", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=tracking.retry_transient)
def ingest_contacts_task(config: IngestConfig, files: list[str] | None, force: bool) -> dict:
    return ingest_contacts(config, files, force)


@flow(name="contacts")
def contacts_flow(config: IngestConfig, files: list[str] | None = None, force: bool = False) -> dict:
    """Ingest contact exports (the given files, or every new file in landing/contacts/)."""
    summary = ingest_contacts_task(config, files, force)
    artifacts.publish(artifacts.CONTACTS_KEY, artifacts.ingest_table(summary),
                      "Contacts: rows in = stored + quarantined + duplicates, per file")
    return summary
