"""Ingest flow: landing files -> validated, de-duplicated events in the store, bad rows quarantined."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import IngestConfig
from flows import events
from ingestion import accounting
from ingestion.batch import prepare_batch
from ingestion.normalize import Mapping, MappingError
from storage import layout, sources, store, tracking

log = logging.getLogger("churn.ingest")


def ingest_file(config: IngestConfig, file: Path, *, now: pd.Timestamp, fmt: str = "contract",
                mapping: Mapping | None = None, timezone: str | None = None, force: bool = False) -> dict:
    """Ingest one file; returns its summary. Rows in = stored + quarantined + duplicates.

    `timezone` overrides the configured one for this file (the `--timezone` flag).
    """
    paths, file = layout.Paths(config.home), Path(file)
    summary: dict = {"file": str(file), "format": fmt, "rows_in": 0, "stored": 0, "quarantined": 0,
                     "duplicates": 0, "reasons": {}}
    try:
        sha = sources.file_sha256(file)
    except OSError as e:
        return {**summary, "status": "error", "error": f"cannot read file: {e}"}
    summary["sha256"] = sha
    skipped = {**summary, "status": "skipped", "error": None, "note": "same content already ingested"}
    if not force and store.ledger_entry(paths, sha):
        return skipped
    try:
        src = sources.read_source(file)
        prepared = prepare_batch(src.frame, src.bad_lines, fmt=fmt, mapping=mapping,
                                 timezone=timezone or config.timezone,
                                 max_event_time=now + pd.Timedelta(hours=config.future_tolerance_hours))
    except (sources.UnreadableFile, MappingError) as e:
        target = sources.move_aside(paths, file, str(e), now)
        log.error("rejected %s: %s (moved to %s)", file, e, target)
        return {**summary, "status": "rejected", "error": str(e), "moved_to": str(target)}

    batch_id = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{sha[:12]}"
    with store.store_lock(paths):
        store.recover(paths)
        if not force and store.ledger_entry(paths, sha):  # another process finished it meanwhile
            return skipped
        days = accounting.batch_days(prepared.events)
        known = store.stored_ids_among(paths, prepared.events["event_id"], days)
        prepared.events, stored_duplicates = accounting.drop_known(prepared, known)
        result = accounting.file_summary(summary, prepared, stored_duplicates, batch_id, now)
        store.commit_batch(paths, batch_id, store.events_table(prepared.events, batch_id),
                           accounting.quarantine_table(prepared.quarantine, batch_id, str(file), now), result, sha)
    result["volume_drops"] = volume_drops(paths, accounting.batch_days(prepared.events))
    return result


def volume_drops(paths: layout.Paths, days: list[str]) -> list[dict]:
    """The batch's days whose stored volume dropped sharply against the days before (logged loudly)."""
    window = accounting.volume_window(days)
    if window is None:
        return []
    drops = accounting.volume_drops(store.daily_counts(paths, *window), days)
    for d in drops:
        log.warning("VOLUME DROP on %s: %d events stored, typically %.0f a day. Is a feed broken? Scoring this "
                    "as churn would be wrong.", d["date"], d["events"], d["typical"])
    return drops


# ------------------------------------------------------------------ Prefect wiring

@task(name="ingest-file", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=tracking.retry_transient)
def ingest_file_task(config: IngestConfig, file: str, now_iso: str, fmt: str, mapping_path: str | None,
                     timezone: str | None, force: bool) -> dict:
    mapping = Mapping.from_file(Path(mapping_path)) if mapping_path else None
    return ingest_file(config, Path(file), now=pd.Timestamp(now_iso), fmt=fmt, mapping=mapping, timezone=timezone,
                       force=force)


@flow(name="ingest")
def ingest_flow(config: IngestConfig, files: list[str] | None = None, fmt: str = "contract",
                mapping_path: str | None = None, timezone: str | None = None, force: bool = False,
                allow_outside_files: bool = False) -> dict:
    """Ingest the given files, or every new file in the landing folder; returns the run summary.

    Files named by parameters (e.g. from a `churn.events.landed` event's payload) must lie in the
    landing folder; `churn ingest FILE` sets `allow_outside_files` for the files its user typed.
    """
    paths = layout.Paths(config.home)
    now = pd.Timestamp.now(tz="UTC")
    targets = ([layout.resolve_inside(paths.landing, f, "file to ingest", allow_outside_files) for f in files]
               if files else sources.landing_files(paths))
    results = [ingest_file_task(config, str(f), now.isoformat(), fmt, mapping_path, timezone, force)
               for f in targets]
    summary = accounting.totals(results)
    if summary["stored"] > 0:  # tells the orchestrator new data is stored (starts scoring when served)
        events.emit(events.INGESTED, config.home,
                    {k: summary[k] for k in ("rows_in", "stored", "quarantined", "duplicates")})
    return summary
