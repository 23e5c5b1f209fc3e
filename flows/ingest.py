"""Ingest flow: landing files -> validated, de-duplicated events in the store, bad rows quarantined."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import IngestConfig
from flows import artifacts, events
from ingestion import accounting
from ingestion.batch import prepare_batch
from ingestion.normalize import Mapping, MappingError
from storage import layout, sources, store, tracking

log = logging.getLogger("churn.ingest")
COMMIT_ATTEMPTS = 5  # duplicate check + commit, again while other Delta writers keep committing in between


def ingest_file(config: IngestConfig, file: Path, *, now: pd.Timestamp, fmt: str = "contract",
                mapping: Mapping | Path | str | None = None, timezone: str | None = None, force: bool = False,
                wait: bool = False) -> dict:
    """Ingest one file; returns its summary. Rows in = stored + quarantined + duplicates + identical rows.

    `timezone` overrides the configured one for this file (the `--timezone` flag); `mapping` is a
    Mapping or the path of a mapping file. A file still being written is left in place ("waiting");
    with `wait`, up to twice the settle time is spent waiting for it first. Anything wrong with this one
    file (its content, its mapping) rejects it; only an environment error (disk full, read-only) raises.
    """
    paths, file = layout.Paths(config.home), Path(file)
    summary, landed = open_landed(config, file, fmt, wait)
    if landed is None:
        return summary
    sha, name = summary["sha256"], summary["file"]
    skipped = {**summary, "status": "skipped", "error": None, "note": "same content already ingested"}
    if not force and store.ledger_entry(paths, sha):
        consume_landed(paths, file, landed)
        return skipped
    batch_id = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{sha[:12]}"
    try:
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = Mapping.from_file(Path(mapping))
        src = sources.read_source(file, landed.data, landed.content)
        prepared = prepare_batch(src.frame, src.bad_lines, fmt=fmt, mapping=mapping,
                                 timezone=timezone or config.timezone,
                                 max_event_time=now + pd.Timedelta(hours=config.future_tolerance_hours))
        # built before the lock: values the store cannot hold fail here, for this file only, not mid-commit
        events = store.events_table(prepared.events, batch_id)
        quarantine_first = accounting.quarantine_table(prepared.quarantine, batch_id, name, now)
    except Exception as e:  # noqa: BLE001 - one bad file must never stop the others
        if sources.needs_a_person(e):
            raise
        return reject_file(paths, file, summary, e, now, landed)

    with store.store_lock(paths):
        store.recover(paths)
        if not force and store.ledger_entry(paths, sha):  # another process finished it meanwhile
            consume_landed(paths, file, landed)
            return skipped
        # another Delta writer may append the same events between the duplicate check and the commit: the commit is
        # made against the version checked and refused if the table moved on; then check again
        as_prepared, as_quarantined = prepared.events, prepared.quarantine
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            prepared.events, prepared.quarantine = as_prepared, as_quarantined.copy()
            version = store.store_version(paths)
            if prepared.folded:  # an invoice's id names the invoice, not its lines: compare what was stored
                stored = store.stored_events_among(paths, prepared.events["event_id"], version)
                known = set(stored["event_id"])
            else:
                stored, known = None, store.stored_ids_among(paths, prepared.events["event_id"], version)
            prepared.events, stored_duplicates = accounting.drop_known(prepared, known, stored)
            quarantine = (accounting.quarantine_table(prepared.quarantine, batch_id, name, now)  # folded conflicts
                          if len(prepared.quarantine) != len(as_quarantined) else quarantine_first)
            try:
                result = accounting.file_summary(summary, prepared, stored_duplicates, batch_id, now)
            except accounting.AccountingError as e:  # a bug; this file's batch is never published
                return reject_file(paths, file, summary, e, now, landed)
            try:
                store.commit_batch(paths, batch_id, store.without_ids(events, known), quarantine, result, sha, version)
                break
            except store.ConcurrentAppend:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                log.info("%s: another writer appended to the event table meanwhile: checking for duplicates again",
                         name)
    consume_landed(paths, file, landed)
    result["volume_drops"] = volume_drops(paths, accounting.batch_days(prepared.events))
    return result


def open_landed(config: IngestConfig, file: Path, fmt: str, wait: bool) -> tuple[dict, sources.Landed | None]:
    """A file's summary row (no rows counted yet, its sha256 once read) and its complete content; (the summary
    with status "error" or "waiting", None) when it cannot be read or is still being written. A named file may
    take up to the settle time to finish (twice that with `wait`), and then must hold still for it. Only an
    environment error (disk full, read-only) raises."""
    name = sources.display_name(file)  # printable and storable even when the file name is not UTF-8
    summary: dict = {"file": name, "format": fmt, "rows_in": 0, "stored": 0, "quarantined": 0,
                     "duplicates": 0, "identical_rows": 0, "reasons": {}}
    try:
        landed = sources.read_complete(file, config.settle_seconds, 2 * config.settle_seconds if wait else 0.0,
                                        config.incomplete_seconds)
    except OSError as e:
        if sources.needs_a_person(e):
            raise
        return {**summary, "status": "error", "error": f"cannot read file: {e}"}, None
    if landed.data is None:
        log.info("left %s for later: %s", name, landed.waiting)
        return {**summary, "status": "waiting", "error": None, "note": landed.waiting}, None
    summary["sha256"] = sources.bytes_sha256(landed.data)
    return summary, landed


def consume_landed(paths: layout.Paths, file: Path, landed: sources.Landed, landing: Path | None = None) -> None:
    """A landing file's NAME.done marker is used up once its content is stored (or known to be); `landing`: the
    landing folder the file belongs to (default `<home>/landing/`; contacts have their own)."""
    if file.parent.resolve() == (landing or paths.landing).resolve():
        sources.consume_marker(file, landed)


def reject_file(paths: layout.Paths, file: Path, summary: dict, error: Exception, now: pd.Timestamp,
            landed: sources.Landed, landing: Path | None = None) -> dict:
    """Put an unusable file in rejected/ with its reason (moved from its landing folder, else copied); the
    file's summary says so, or that it is left for a later run if it changed since it was read."""
    expected = isinstance(error, (sources.UnreadableFile, MappingError))
    text = str(error) if expected else f"could not be prepared ({type(error).__name__}: {error})"
    target = sources.move_aside(paths, file, text, now, landed.signature, landing=landing)
    if target is None:
        note = f"changed since it was read (a writer still at work?), left for a later run; it was: {text}"
        log.info("left %s for later: %s", summary["file"], note)
        return {**summary, "status": "waiting", "error": None, "note": note}
    moved = file.parent.resolve() == (landing or paths.landing).resolve()  # a file named elsewhere is copied
    log.error("rejected %s: %s (%s to %s)", summary["file"], text, "moved" if moved else "copied",
              sources.display_name(target))
    return {**summary, "status": "rejected", "error": text, "moved_to": sources.display_name(target)}


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
                     timezone: str | None, force: bool, wait: bool = False) -> dict:
    return ingest_file(config, Path(file), now=pd.Timestamp(now_iso), fmt=fmt, mapping=mapping_path,
                       timezone=timezone, force=force, wait=wait)


@flow(name="ingest", flow_run_name=artifacts.ingest_run_name)
def ingest_flow(config: IngestConfig, files: list[str] | None = None, fmt: str = "contract",
                mapping_path: str | None = None, timezone: str | None = None, force: bool = False,
                allow_outside_files: bool = False) -> dict:
    """Ingest the given files, or every new file in the landing folder; returns the run summary.

    Files named by parameters (e.g. from a `churn.events.landed` event's payload) must lie in the
    landing folder; `churn ingest FILE` sets `allow_outside_files` for the files its user typed.
    """
    paths = layout.Paths(config.home)
    now = pd.Timestamp.now(tz="UTC")
    if files:  # named files: wait up to the settle time for one still being written
        targets = [layout.resolve_inside(paths.landing, f, "file to ingest", allow_outside_files) for f in files]
        refused: list = []
    else:  # the sweep: a file still being written is left for the next one
        scan = sources.landing_scan(paths)
        targets = scan.files
        refused = [accounting.refused_file(sources.display_name(p), why) for p, why in scan.refused]
    for r in refused:
        log.warning("%s: %s", r["file"], r["error"])
    results = list(refused)
    for k, f in enumerate(targets, 1):
        log.info("ingesting %s (file %d of %d)", Path(f).name, k, len(targets))
        r = ingest_file_task(config, str(f), now.isoformat(), fmt, mapping_path, timezone, force, bool(files))
        log.info("  %s: %s rows in, %s stored, %s quarantined, %s duplicates", r.get("status"), f"{r['rows_in']:,}",
                 f"{r['stored']:,}", f"{r['quarantined']:,}", f"{r['duplicates']:,}")
        results.append(r)
    summary = accounting.totals(results)
    artifacts.publish(artifacts.INGEST_KEY, artifacts.ingest_table(summary),
                      "Rows in = stored + quarantined + duplicates + identical rows, per file")
    if summary["stored"] > 0:  # tells the orchestrator new data is stored (starts scoring when served)
        events.emit(events.INGESTED, config.home,
                    {k: summary[k] for k in ("rows_in", "stored", "quarantined", "duplicates")})
    return summary
