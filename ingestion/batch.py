"""One source file -> a prepared batch: valid events, quarantined rows with reasons, duplicates.

Pure: takes the rows read from a file and returns frames. Every source row is accounted for in
units of source rows: `rows_in == len(events rows) + quarantined + duplicates`, where an event
folded from several lines (an invoice) counts for all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from expectations.contract import COLUMN_NAMES
from ingestion.normalize import (
    TIME_KEY,
    Mapping,
    apply_mapping,
    coerce,
    derive_event_ids,
    fold_lines,
    online_retail_events,
    rename_columns,
)
from ingestion.validate import contract_violations

FORMATS = ("contract", "online-retail")


@dataclass
class PreparedBatch:
    """What one file becomes before it meets the store."""

    events: pd.DataFrame  # contract columns + _row, _rows: valid and unique within the file
    quarantine: pd.DataFrame  # _row, _rows, reason, reasons, original
    duplicates: int  # source rows that repeat an earlier row's event_id (given by the source) in the file
    rows_in: int
    gx: dict = field(default_factory=dict)
    # rows without a source event_id identical in every contract column to an earlier row of the file:
    # they get the same derived id and are stored as one event (so a replayed file stores nothing twice),
    # but they may be real repeat purchases, so they are counted apart from duplicates, never silently
    identical_rows: int = 0
    # events folded from several source lines (an invoice, an order): their id names the order, not its lines,
    # so one already stored is a duplicate only if it was stored with the same values (see accounting.drop_known)
    folded: bool = False


def source_originals(source: pd.DataFrame, rows: pd.Series) -> list[str]:
    by_row = source.set_index("_row")
    out = []
    for r in rows:
        rec = by_row.loc[r].to_dict() if r in by_row.index else {}
        out.append(json.dumps({str(k): (None if _isna(v) else str(v)) for k, v in rec.items()}, ensure_ascii=False)[:100_000])
    return out


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def quarantine_frame(rows: pd.Series, weights: pd.Series, reasons: pd.Series) -> pd.DataFrame:
    reasons = reasons.astype("string")
    return pd.DataFrame({"_row": rows.to_numpy(dtype=np.int64), "_rows": weights.to_numpy(dtype=np.int64),
                         "reason": reasons.str.split("; ").str[0].to_numpy(), "reasons": reasons.to_numpy()})


def bad_line_frame(bad_lines: list[tuple[int, str, str]]) -> pd.DataFrame:
    """Quarantine rows of the lines the reader could not split into fields: (row, original text, reason)."""
    return pd.DataFrame({"_row": [b[0] for b in bad_lines], "_rows": 1, "reason": [b[2] for b in bad_lines],
                         "reasons": [b[2] for b in bad_lines], "original": [b[1] for b in bad_lines]})


def prepare_batch(source: pd.DataFrame, bad_lines: list[tuple[int, str, str]], *, fmt: str = "contract",
                  mapping: Mapping | None = None, timezone: str = "UTC",
                  max_event_time: pd.Timestamp) -> PreparedBatch:
    """Map, parse, validate (GX) and de-duplicate one file's rows."""
    rows_in = len(source) + len(bad_lines)
    parts = [bad_line_frame(bad_lines)] if bad_lines else []
    duplicates = 0
    if mapping is not None and mapping.rename and not source.empty:
        source = rename_columns(source, mapping.rename)
    if source.empty:
        cand = pd.DataFrame(columns=["_row", "_rows", *COLUMN_NAMES])
    elif fmt == "online-retail":
        adapted = online_retail_events(source)
        duplicates += adapted.duplicate_rows
        if len(adapted.quarantined):
            q = quarantine_frame(adapted.quarantined["_row"], pd.Series(1, index=adapted.quarantined.index),
                                  adapted.quarantined["reason"])
            q["original"] = source_originals(source, q["_row"])
            parts.append(q)
        cand = adapted.candidates
    elif fmt == "contract":
        cand = apply_mapping(source, mapping)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    tz = (mapping.timezone if mapping and mapping.timezone else timezone)
    typed, parse_reason = coerce(cand, tz, mapping.time_format if mapping else None)

    bad_parse = parse_reason.notna()
    if bad_parse.any():
        q = quarantine_frame(typed.loc[bad_parse, "_row"], typed.loc[bad_parse, "_rows"], parse_reason[bad_parse])
        q["original"] = source_originals(source, q["_row"])
        parts.append(q)
    if mapping is not None and mapping.fold_by and bad_parse.any():
        # an order is stored whole or not at all: a quarantined line takes the rest of its order with it (a
        # folded event from the remaining lines would be stored short, and a corrected delivery then refused)
        by = mapping.fold_by
        key = typed[by].astype("string")
        broken = key[bad_parse].dropna()
        first_bad = typed.loc[broken.index, "_row"].groupby(broken.to_numpy()).min()
        with_broken = ~bad_parse & key.isin(set(broken))
        if with_broken.any():
            why = key[with_broken].map(lambda k: f"{by}: another line of this {by} (row {first_bad[k]}) was "
                                                 f"quarantined, and an {by} is stored only whole")
            q = quarantine_frame(typed.loc[with_broken, "_row"], typed.loc[with_broken, "_rows"], why)
            q["original"] = source_originals(source, q["_row"])
            parts.append(q)
            bad_parse = bad_parse | with_broken
    typed = typed[~bad_parse].copy()
    if mapping is not None and mapping.fold_by and len(typed):
        folded, fold_reason = fold_lines(typed, mapping.fold_by)
        bad_fold = fold_reason.notna()
        if bad_fold.any():
            q = quarantine_frame(typed.loc[bad_fold, "_row"], typed.loc[bad_fold, "_rows"], fold_reason[bad_fold])
            q["original"] = source_originals(source, q["_row"])
            parts.append(q)
        typed = folded
    derived = (typed["event_id"].isna() | (typed["event_id"] == "")).to_numpy(dtype=bool)
    typed["event_id"] = derive_event_ids(typed)
    typed = typed.drop(columns=TIME_KEY)

    violations, gx_summary = contract_violations(typed[list(COLUMN_NAMES)], max_event_time)
    bad = violations.notna()
    if bad.any():
        q = quarantine_frame(typed.loc[bad, "_row"], typed.loc[bad, "_rows"], violations[bad])
        q["original"] = source_originals(source, q["_row"])
        parts.append(q)
    good, derived = typed[~bad], derived[~bad.to_numpy(dtype=bool)]
    dup = good["event_id"].duplicated(keep="first").to_numpy(dtype=bool)
    duplicates += int(good.loc[dup & ~derived, "_rows"].sum())
    identical_rows = int(good.loc[dup & derived, "_rows"].sum())
    good = good[~dup].reset_index(drop=True)
    quarantine = (pd.concat(parts, ignore_index=True) if parts
                  else pd.DataFrame(columns=["_row", "_rows", "reason", "reasons", "original"]))
    return PreparedBatch(good, quarantine.sort_values("_row", kind="stable").reset_index(drop=True),
                         duplicates, rows_in, gx_summary, identical_rows,
                         folded=fmt == "online-retail" or bool(mapping is not None and mapping.fold_by))
