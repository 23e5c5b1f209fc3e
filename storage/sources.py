"""Source files: finding them in the landing folder, reading them as rows, moving unreadable ones aside."""

from __future__ import annotations

import gzip
import hashlib
import io as _io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from storage.atomic import write_json_atomic
from storage.layout import Paths

SOURCE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".ndjson", ".json")
MAX_FIELD_BYTES = 256 * 1024 * 1024  # one CSV value; longer ones are quarantined by the contract, not here


class UnreadableFile(Exception):
    """A source file that cannot be read at all; it is moved aside, never retried blindly."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def landing_files(paths: Paths) -> list[Path]:
    """Files waiting in the landing folder, oldest name first (hidden and temp files ignored)."""
    if not paths.landing.exists():
        return []
    out = []
    for p in sorted(paths.landing.iterdir()):
        name = p.name.lower().removesuffix(".gz")
        if p.is_file() and not p.name.startswith(".") and name.endswith(SOURCE_SUFFIXES):
            out.append(p)
    return out


def source_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise UnreadableFile(f"unsupported file type {path.suffix!r}: expected .parquet, .csv or .jsonl")


def _raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise UnreadableFile(f"corrupt gzip stream: {e}") from e
    return data


@dataclass
class SourceRows:
    """A source file read as rows: `frame` keeps the source's own columns; `bad_lines` could not be parsed."""

    frame: pd.DataFrame
    bad_lines: list[tuple[int, str, str]]  # (row_number, original text, reason)
    fmt: str


def read_source(path: Path) -> SourceRows:
    """Read a landing file. CSV/JSON values stay strings (ids are opaque); row numbers start at 1."""
    fmt = source_format(path)
    data = _raw_bytes(path)
    bad: list[tuple[int, str, str]] = []
    if fmt == "parquet":
        try:
            frame = _nan_as_text(pq.read_table(pa.BufferReader(data))).to_pandas()
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UnreadableFile(f"not a readable Parquet file: {e}") from e
    else:
        if not data.strip():
            return SourceRows(pd.DataFrame(), [], fmt)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UnreadableFile(f"not UTF-8 text (byte {e.start}): re-export the file as UTF-8") from e
        if fmt == "csv":
            import csv

            try:
                frame, bad = _csv_with_row_numbers(text)
            except csv.Error as e:
                raise UnreadableFile(f"not a readable CSV file: {e}") from e
        else:
            frame, bad = _jsonl(text)
    frame = frame.reset_index(drop=True)
    if "_row" not in frame.columns:
        frame.insert(0, "_row", pd.RangeIndex(1, len(frame) + 1).to_numpy())
    return SourceRows(frame, bad, fmt)


def _nan_as_text(table: pa.Table) -> pa.Table:
    """Float columns holding NaN become text ("nan"), so NaN is judged "not a finite number", not "missing"."""
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type) and pc.any(pc.is_nan(table.column(i))).as_py():
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.string()))
    return table


def _csv_with_row_numbers(text: str) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Parse CSV keeping each record's row number; records with the wrong field count are bad lines."""
    import csv

    csv.field_size_limit(MAX_FIELD_BYTES)  # the default (128 KB) would reject a whole file for one long value
    reader = csv.reader(_io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return pd.DataFrame(), []
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise UnreadableFile(f"duplicate column names in header: {header}")
    rows, numbers, bad = [], [], []
    for i, rec in enumerate(reader, start=1):
        if len(rec) != len(header):
            if not any(field.strip() for field in rec):
                continue  # blank line
            bad.append((i, json.dumps(rec), f"malformed CSV record: {len(rec)} fields, header has {len(header)}"))
            continue
        rows.append(rec)
        numbers.append(i)
    frame = pd.DataFrame(rows, columns=header, dtype=object).replace({"": None})
    frame.insert(0, "_row", numbers)
    return frame, bad


def _jsonl(text: str) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    records, numbers, bad = [], [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append((i, line[:10_000], f"malformed JSON line: {e.msg}"))
            continue
        if not isinstance(rec, dict):
            bad.append((i, line[:10_000], "malformed JSON line: not an object"))
            continue
        records.append({k: (None if v is None else v if isinstance(v, str) else json.dumps(v)) for k, v in rec.items()})
        numbers.append(i)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame.insert(0, "_row", numbers)
    return frame, bad


def move_aside(paths: Paths, path: Path, error: str, when: pd.Timestamp) -> Path:
    """Put an unreadable file in rejected/ with its error; removes it from landing/ if it came from there."""
    target = paths.rejected / f"{when.strftime('%Y%m%dT%H%M%S')}-{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target.with_name(f".{target.name}.tmp"))
    os.replace(target.with_name(f".{target.name}.tmp"), target)
    write_json_atomic({"file": str(path), "error": error, "rejected_at": when.isoformat()},
                      target.with_name(target.name + ".error.json"))
    if path.parent.resolve() == paths.landing.resolve():
        path.unlink()
    return target

