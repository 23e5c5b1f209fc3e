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


REASON_FOLDED_CONFLICT = ("invoice or order already stored from another file with other lines (its lines belong "
                          "in one file)")


def drop_known(prepared: PreparedBatch, known_ids: set[str],
               stored: pd.DataFrame | None = None) -> tuple[pd.DataFrame, int]:
    """The batch's events without those already stored, and the source rows the dropped ones stood for.

    For folded events (`prepared.folded`: an invoice or order made of several lines), `stored` holds the
    stored events with those ids: one stored with other values (a partial delivery stored earlier) is no
    duplicate of these lines; it is added to `prepared.quarantine` with REASON_FOLDED_CONFLICT (its lines
    counted as quarantined, never silently as duplicates), and the stored event is left as it is.
    """
    ev = prepared.events
    if ev.empty or not known_ids:
        return ev, 0
    hit = ev["event_id"].isin(known_ids)
    if prepared.folded and stored is not None:
        conflict = hit & ~_same_as_stored(ev, stored)
        if conflict.any():
            prepared.quarantine = pd.concat([prepared.quarantine, _conflicts(ev[conflict], stored)],
                                            ignore_index=True).sort_values("_row", kind="stable")
            hit &= ~conflict
            ev = ev[~conflict]
            hit = hit[~conflict]
    return ev[~hit].reset_index(drop=True), int(ev.loc[hit, "_rows"].sum())


def _same_as_stored(events: pd.DataFrame, stored: pd.DataFrame) -> pd.Series:
    """Per event, whether an event with its id is stored with the same value in every contract column."""
    from expectations.contract import COLUMN_NAMES

    other = stored.drop_duplicates("event_id").set_index("event_id").reindex(events["event_id"])
    same = pd.Series(True, index=events.index)
    for c in COLUMN_NAMES:
        if c == "event_id":
            continue
        a, b = events[c].reset_index(drop=True), other[c].reset_index(drop=True)
        equal = (a.isna() & b.isna()) | (a.astype(object) == b.astype(object)).fillna(False).astype(bool)
        same &= equal.to_numpy()
    return same


def _conflicts(events: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    import json

    from expectations.contract import COLUMN_NAMES

    def values(row) -> dict:
        return {c: (None if pd.isna(row[c]) else str(row[c])) for c in COLUMN_NAMES}

    by_id = stored.drop_duplicates("event_id").set_index("event_id", drop=False)
    originals = [json.dumps({"this file": {**values(r), "lines": int(r["_rows"])},
                             "stored": values(by_id.loc[r["event_id"]])}, ensure_ascii=False)
                 for _, r in events.iterrows()]
    return pd.DataFrame({"_row": events["_row"].to_numpy(), "_rows": events["_rows"].to_numpy(),
                         "reason": REASON_FOLDED_CONFLICT, "reasons": REASON_FOLDED_CONFLICT,
                         "original": originals})


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
