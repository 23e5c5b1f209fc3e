"""Row accounting of an ingest: per-file summaries, the quarantine table, run totals, volume drops (pure)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from expectations.quarantine import QUARANTINE_SCHEMA
from ingestion.batch import PreparedBatch

VOLUME_HISTORY_DAYS = 28
VOLUME_DROP_FACTOR = 10.0
VOLUME_MAX_BATCH_DAYS = 31  # a backfill over more days says nothing about the daily feed


class AccountingError(RuntimeError):
    """Rows in != stored + quarantined + duplicates + identical rows: a bug; the batch is never published."""


def reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """Source rows per first quarantine reason, most frequent first."""
    if quarantine.empty:
        return {}
    counts = quarantine.groupby("reason")["_rows"].sum().sort_values(ascending=False)
    return {str(k): int(v) for k, v in counts.items()}


def quarantine_table(q: pd.DataFrame, batch_id: str, source: str, now: pd.Timestamp) -> pa.Table:
    """The batch's quarantined rows in the quarantine contract (expectations/quarantine.py)."""
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


def drop_known(prepared: PreparedBatch, known_ids: set[str]) -> tuple[pd.DataFrame, int]:
    """The batch's events without those already stored, and the source rows the dropped ones stood for."""
    ev = prepared.events
    if ev.empty or not known_ids:
        return ev, 0
    hit = ev["event_id"].isin(known_ids)
    return ev[~hit].reset_index(drop=True), int(ev.loc[hit, "_rows"].sum())


def adds_up(counts: dict) -> bool:
    """rows in = stored + quarantined + duplicates + identical rows (of one file or of a whole run)."""
    return counts["rows_in"] == (counts["stored"] + counts["quarantined"] + counts["duplicates"]
                                 + counts.get("identical_rows", 0))


def file_summary(base: dict, prepared: PreparedBatch, stored_duplicates: int, batch_id: str,
                 now: pd.Timestamp) -> dict:
    """One file's result; raises AccountingError when its counts do not add up."""
    result = {**base, "status": "ingested", "error": None, "batch_id": batch_id,
              "rows_in": prepared.rows_in, "stored": int(prepared.events["_rows"].sum()),
              "events_stored": len(prepared.events), "quarantined": int(prepared.quarantine["_rows"].sum()),
              "duplicates": prepared.duplicates + stored_duplicates, "identical_rows": prepared.identical_rows,
              "reasons": reason_counts(prepared.quarantine), "validation": prepared.gx,
              "ingested_at": now.isoformat()}
    if not adds_up(result):
        raise AccountingError(f"accounting bug, batch not published: {result}")
    return result


def refused_file(file: str, why: str) -> dict:
    """The summary of a landing entry left alone (e.g. a symlink out of the landing folder): nothing read."""
    return {"file": file, "status": "refused", "error": why, "rows_in": 0, "stored": 0, "quarantined": 0,
            "duplicates": 0, "identical_rows": 0, "reasons": {}}


def totals(files: list[dict]) -> dict:
    """The run summary: per-file results and their sums; reasons summed over files."""
    reasons: dict[str, int] = {}
    for f in files:
        for k, v in f.get("reasons", {}).items():
            reasons[k] = reasons.get(k, 0) + v
    keys = ("rows_in", "stored", "quarantined", "duplicates", "identical_rows")
    out = {k: sum(f.get(k, 0) for f in files) for k in keys}
    out.update({
        "volume_drops": [d for f in files for d in f.get("volume_drops", [])],
        "files_ingested": sum(f["status"] == "ingested" for f in files),
        "files_skipped": sum(f["status"] == "skipped" for f in files),
        "files_rejected": sum(f["status"] in ("rejected", "error") for f in files),
        "files_waiting": sum(f["status"] == "waiting" for f in files),
        "files_refused": sum(f["status"] == "refused" for f in files),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "files": files,
    })
    return out


def batch_days(events: pd.DataFrame) -> list[str]:
    """The UTC event dates (YYYY-MM-DD) a batch touches, sorted."""
    if events.empty:
        return []
    return sorted({d.strftime("%Y-%m-%d") for d in events["event_time"].dt.floor("D").unique()})


def volume_window(days: list[str]) -> tuple[str, str] | None:
    """The stored days to compare a batch's days against (None: nothing to check, e.g. a long backfill)."""
    if not days or len(days) > VOLUME_MAX_BATCH_DAYS:
        return None
    return (pd.Timestamp(days[0]) - pd.Timedelta(days=VOLUME_HISTORY_DAYS)).strftime("%Y-%m-%d"), days[-1]


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
