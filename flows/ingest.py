"""Ingest flow: landing files -> validated, de-duplicated events in the store, bad rows quarantined."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
from prefect import flow, task

from expectations.contract import COLUMN_NAMES, EVENT_SCHEMA, QUARANTINE_SCHEMA
from flows import events
from ingestion.batch import PreparedBatch, prepare_batch
from ingestion.normalize import Mapping, MappingError
from storage import layout, sources, store, tracking

log = logging.getLogger("churn.ingest")


def _events_table(events: pd.DataFrame, batch_id: str) -> pa.Table:
    table = pa.Table.from_pandas(events[list(COLUMN_NAMES)], schema=EVENT_SCHEMA, preserve_index=False)
    return table.append_column("ingest_batch", pa.array([batch_id] * table.num_rows, pa.string()))


def _quarantine_table(q: pd.DataFrame, batch_id: str, source: str, now: pd.Timestamp) -> pa.Table:
    n = len(q)
    return pa.table({
        "ingest_batch": pa.array([batch_id] * n, pa.string()),
        "source_file": pa.array([source] * n, pa.string()),
        "row_number": pa.array(q["_row"].to_numpy(dtype="int64")),
        "reason": pa.array(q["reason"].astype(str).tolist(), pa.string()),
        "reasons": pa.array(q["reasons"].astype(str).tolist(), pa.string()),
        "original": pa.array(q["original"].astype(str).tolist(), pa.string()),
        "source_rows": pa.array(q["_rows"].to_numpy(dtype="int64")),
        "quarantined_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    }, schema=QUARANTINE_SCHEMA)


def _reason_counts(q: pd.DataFrame) -> dict[str, int]:
    if q.empty:
        return {}
    return {str(k): int(v) for k, v in q.groupby("reason")["_rows"].sum().sort_values(ascending=False).items()}


def ingest_file(paths: layout.Paths, file: Path, *, now: pd.Timestamp, fmt: str = "contract",
                mapping: Mapping | None = None, timezone: str = "UTC", future_tolerance_hours: float = 24.0,
                force: bool = False) -> dict:
    """Ingest one file; returns its summary. Rows in = stored + quarantined + duplicates."""
    file = Path(file)
    summary: dict = {"file": str(file), "format": fmt, "rows_in": 0, "stored": 0, "quarantined": 0,
                     "duplicates": 0, "reasons": {}}
    try:
        sha = sources.file_sha256(file)
    except OSError as e:
        return {**summary, "status": "error", "error": f"cannot read file: {e}"}
    summary["sha256"] = sha
    if not force and store.ledger_entry(paths, sha):
        return {**summary, "status": "skipped", "error": None, "note": "same content already ingested"}
    try:
        src = sources.read_source(file)
        prepared = prepare_batch(src.frame, src.bad_lines, fmt=fmt, mapping=mapping, timezone=timezone,
                                 max_event_time=now + pd.Timedelta(hours=future_tolerance_hours))
    except (sources.UnreadableFile, MappingError) as e:
        target = sources.move_aside(paths, file, str(e), now)
        log.error("rejected %s: %s (moved to %s)", file, e, target)
        return {**summary, "status": "rejected", "error": str(e), "moved_to": str(target)}

    batch_id = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{sha[:12]}"
    with store.store_lock(paths):
        store.recover(paths)
        if not force and store.ledger_entry(paths, sha):  # another process finished it meanwhile
            return {**summary, "status": "skipped", "error": None, "note": "same content already ingested"}
        stored_dupes = _drop_stored(paths, prepared)
        result = {**summary, "status": "ingested", "error": None, "batch_id": batch_id,
                  "rows_in": prepared.rows_in, "stored": int(prepared.events["_rows"].sum()),
                  "events_stored": len(prepared.events), "quarantined": int(prepared.quarantine["_rows"].sum()),
                  "duplicates": prepared.duplicates + stored_dupes,
                  "reasons": _reason_counts(prepared.quarantine), "validation": prepared.gx,
                  "ingested_at": now.isoformat()}
        if result["rows_in"] != result["stored"] + result["quarantined"] + result["duplicates"]:
            raise RuntimeError(f"accounting bug: {result}")  # never publish a batch that loses rows
        store.commit_batch(paths, batch_id, _events_table(prepared.events, batch_id),
                        _quarantine_table(prepared.quarantine, batch_id, str(file), now), result, sha)
    result["volume_drops"] = _check_volume(paths, prepared.events)
    return result


VOLUME_HISTORY_DAYS = 28
VOLUME_DROP_FACTOR = 10.0


def _batch_days(events: pd.DataFrame) -> list[str]:
    """The UTC event dates (YYYY-MM-DD) a batch touches, sorted."""
    return sorted({d.strftime("%Y-%m-%d") for d in events["event_time"].dt.floor("D").unique()})


def _check_volume(paths: layout.Paths, events: pd.DataFrame) -> list[dict]:
    if events.empty:
        return []
    days = _batch_days(events)
    if len(days) > 31:
        return []  # a backfill over many days: per-day volume says nothing about the feed
    start = (pd.Timestamp(days[0]) - pd.Timedelta(days=VOLUME_HISTORY_DAYS)).strftime("%Y-%m-%d")
    drops = volume_drops(store.daily_counts(paths, start, days[-1]), days)
    for d in drops:
        log.warning("VOLUME DROP on %s: %d events stored, typically %.0f a day. Is a feed broken? Scoring this "
                    "as churn would be wrong.", d["date"], d["events"], d["typical"])
    return drops


def volume_drops(counts: pd.Series, batch_days: list[str], history_days: int = VOLUME_HISTORY_DAYS,
                 factor: float = VOLUME_DROP_FACTOR) -> list[dict]:
    """Days of this batch whose stored volume is `factor` times below the median of the days before them.

    A sudden drop usually means a broken feed, not mass churn: it is reported, never silently scored.
    """
    out = []
    for day in sorted(batch_days):
        d = pd.Timestamp(day)
        before = counts[(counts.index >= (d - pd.Timedelta(days=history_days)).strftime("%Y-%m-%d"))
                        & (counts.index < day)]
        if len(before) < 7:
            continue  # not enough history to call anything unusual
        typical = float(before.median())
        n = int(counts.get(day, 0))
        if n * factor <= typical:
            out.append({"date": day, "events": n, "typical": typical})
    return out


def _drop_stored(paths: layout.Paths, prepared: PreparedBatch) -> int:
    """Remove events whose id is already stored; returns the source rows they stood for."""
    ev = prepared.events
    if ev.empty:
        return 0
    known = store.stored_ids_among(paths, pa.array(ev["event_id"].astype(str).tolist(), pa.string()), _batch_days(ev))
    if not known:
        return 0
    hit = ev["event_id"].isin(known)
    prepared.events = ev[~hit].reset_index(drop=True)
    return int(ev.loc[hit, "_rows"].sum())


def totals(files: list[dict]) -> dict:
    """The run summary: per-file results and their sums; reasons summed over files."""
    reasons: dict[str, int] = {}
    for f in files:
        for k, v in f.get("reasons", {}).items():
            reasons[k] = reasons.get(k, 0) + v
    keys = ("rows_in", "stored", "quarantined", "duplicates")
    out = {k: sum(f.get(k, 0) for f in files) for k in keys}
    out.update({
        "volume_drops": [d for f in files for d in f.get("volume_drops", [])],
        "files_ingested": sum(f["status"] == "ingested" for f in files),
        "files_skipped": sum(f["status"] == "skipped" for f in files),
        "files_rejected": sum(f["status"] in ("rejected", "error") for f in files),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "files": files,
    })
    return out


# ------------------------------------------------------------------ Prefect wiring

@task(name="ingest-file", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=tracking.retry_transient)
def ingest_file_task(home: str, file: str, now_iso: str, fmt: str, mapping_path: str | None,
                     timezone: str, future_tolerance_hours: float, force: bool) -> dict:
    mapping = Mapping.from_file(Path(mapping_path)) if mapping_path else None
    return ingest_file(layout.Paths(Path(home)), Path(file), now=pd.Timestamp(now_iso), fmt=fmt, mapping=mapping,
                       timezone=timezone, future_tolerance_hours=future_tolerance_hours, force=force)


@flow(name="ingest")
def ingest_flow(home: str, files: list[str] | None = None, fmt: str = "contract",
                mapping_path: str | None = None, timezone: str = "UTC",
                future_tolerance_hours: float = 24.0, force: bool = False, allow_outside_files: bool = False) -> dict:
    """Ingest the given files, or every new file in the landing folder; returns the run summary.

    Files named by parameters (e.g. from a `churn.events.landed` event's payload) must lie in the
    landing folder; `churn ingest FILE` sets `allow_outside_files` for the files its user typed.
    """
    paths = layout.Paths(Path(home))
    now = pd.Timestamp.now(tz="UTC")
    targets = ([layout.resolve_inside(paths.landing, f, "file to ingest", allow_outside_files) for f in files]
               if files else sources.landing_files(paths))
    results = [ingest_file_task(home, str(f), now.isoformat(), fmt, mapping_path, timezone,
                                future_tolerance_hours, force) for f in targets]
    summary = totals(results)
    _emit_ingested(home, summary)
    return summary


def _emit_ingested(home: str, summary: dict) -> None:
    """Tell the orchestrator new data is stored (starts scoring when deployments are served)."""
    if summary["stored"] > 0:
        events.emit(events.INGESTED, home, {k: summary[k] for k in ("rows_in", "stored", "quarantined", "duplicates")})
