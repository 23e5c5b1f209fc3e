"""The quarantine contract: one row per rejected source row (or folded group of rows), with its reasons."""

from __future__ import annotations

import pyarrow as pa

from expectations.contract import Column

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    Column("ingest_batch", pa.string(), "the ingest batch that read the row", required=True),
    Column("source_file", pa.string(), "the file the row came from", required=True),
    Column("row_number", pa.int64(), "its row number in that file (1 = first data row)", required=True,
           min_value=1.0, kind="number"),
    Column("reason", pa.string(), "the first contract rule it broke", required=True),
    Column("reasons", pa.string(), "every rule it broke, joined by '; '", required=True),
    Column("original", pa.string(), "the row's original values as JSON (text as read)", required=True),
    Column("source_rows", pa.int64(), "source rows it stands for (an invoice folds several lines)", required=True,
           min_value=1.0, kind="number"),
    Column("quarantined_at", pa.timestamp("us", tz="UTC"), "when it was quarantined", required=True,
           kind="timestamp"),
)

QUARANTINE_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in QUARANTINE_COLUMNS])
