"""Every read and write of the data folder goes through this module.

Layout under the home folder:

    landing/                 files waiting to be ingested (Parquet, CSV, JSON Lines; .gz allowed)
    events/event_month=M/    the event store: Parquet, one file per ingest batch and month (UTC)
    quarantine/              rejected rows, one Parquet file per batch, with reasons
    rejected/                whole files that could not be read, each with a .error.json beside it
    state/ingested/          one JSON record per ingested file content (sha256): the ledger
    truth/                   the simulator's ground truth (only for generated data)
    mlflow/                  the default MLflow tracking database and artifacts
    .staging/                batches being committed (see `commit_batch`)
    .duckdb-tmp/<pid>/       DuckDB spill files of a running query (see `connect`)

Writes are atomic: a file is written beside its target as `.name.tmp` and renamed into place.
A batch spans several files, so it is committed through a journal: staged files plus a COMMIT
marker, then renamed into place. `recover` rolls a committed batch forward and discards an
uncommitted one, so a crash at any point leaves the store as if the batch never started or had
fully finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io as _io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from expectations.contract import QUARANTINE_SCHEMA, STORE_SCHEMA

SOURCE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".ndjson", ".json")
MAX_FIELD_BYTES = 256 * 1024 * 1024  # one CSV value; longer ones are quarantined by the contract, not here


class UnreadableFile(Exception):
    """A source file that cannot be read at all; it is moved aside, never retried blindly."""


class PathOutside(ValueError):
    """A path from settings, a mapping or an event leads outside the folder it must stay in."""


def resolve_inside(base: Path, path: str | Path, what: str, allow_outside: bool = False) -> Path:
    """`path` resolved against `base` (symlinks followed); outside `base` only when explicitly allowed.

    Relative paths are read against `base`, never against the current directory; `..` and symlinks
    that lead out of `base` are refused unless `allow_outside` (then only absolute paths are taken).
    """
    base = Path(base).resolve()
    p = Path(path).expanduser()
    resolved = (p if p.is_absolute() else base / p).resolve()
    if resolved == base or base in resolved.parents:
        return resolved
    if allow_outside and p.is_absolute():
        return resolved
    raise PathOutside(f"{what} {str(path)!r} resolves to {resolved}, outside {base}; "
                      + ("give an absolute path" if allow_outside else
                         "paths outside the data folder need an absolute path and allow_outside_paths = true"))


@dataclass(frozen=True)
class Paths:
    """Where everything lives under one home folder."""

    home: Path

    @property
    def landing(self) -> Path: return self.home / "landing"
    @property
    def events(self) -> Path: return self.home / "events"
    @property
    def quarantine(self) -> Path: return self.home / "quarantine"
    @property
    def rejected(self) -> Path: return self.home / "rejected"
    @property
    def ledger(self) -> Path: return self.home / "state" / "ingested"
    @property
    def staging(self) -> Path: return self.home / ".staging"
    @property
    def truth(self) -> Path: return self.home / "truth"
    @property
    def mlflow(self) -> Path: return self.home / "mlflow"
    @property
    def lock_file(self) -> Path: return self.home / "state" / "store.lock"


# DuckDB stays inside this budget and spills to <home>/.duckdb-tmp/<pid> beyond it (the 100M-event
# feature build peaks at about 2 GB); result order comes from ORDER BY, never from insertion order.
QUERY_MEMORY_LIMIT = "3GB"


def connect(paths: Paths):
    """A DuckDB connection for queries over the store: bounded memory, spill files under the data folder."""
    import duckdb

    spill = paths.home / ".duckdb-tmp" / str(os.getpid())  # per process: concurrent commands never share
    return duckdb.connect(config={"memory_limit": QUERY_MEMORY_LIMIT, "preserve_insertion_order": False,
                                  "temp_directory": str(spill)})


# ---------------------------------------------------------------- atomic primitives

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _removed_on_error(tmp: Path) -> Iterator[None]:
    """A failed write (e.g. disk full) leaves the target as it was and takes its partial temp file away."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write bytes so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with _removed_on_error(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically (temp file beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with _removed_on_error(tmp):
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_json_atomic(obj: object, path: Path) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


@contextlib.contextmanager
def store_lock(paths: Paths) -> Iterator[None]:
    """Exclusive lock on the store: one writer at a time, across processes."""
    paths.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------- source files

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


# ---------------------------------------------------------------- ledger

def ledger_entry(paths: Paths, sha: str) -> dict | None:
    p = paths.ledger / f"{sha}.json"
    return json.loads(p.read_text()) if p.exists() else None


# ---------------------------------------------------------------- event store

def _months(days: list[str]) -> list[str]:
    return sorted({d[:7] for d in days})


def event_files(paths: Paths, dates: list[str] | None = None) -> list[Path]:
    """Committed event files, optionally only the partitions holding the given event dates (YYYY-MM-DD).

    The store is partitioned by month, not day: a batch then writes a few files instead of one per
    day, and scans stay fast (12,000 one-day files of a 10M-event store scanned 5x slower than 400).
    """
    if not paths.events.exists():
        return []
    if dates is None:
        return sorted(paths.events.glob("event_month=*/*.parquet"))
    out: list[Path] = []
    for m in _months(dates):
        out.extend(sorted((paths.events / f"event_month={m}").glob("*.parquet")))
    return out


def stored_ids_among(paths: Paths, candidate_ids: pa.Array, dates: list[str]) -> set[str]:
    """Which of the candidate event ids are already stored (only the given dates' partitions are read)."""
    files = event_files(paths, dates)
    if not files or len(candidate_ids) == 0:
        return set()
    con = connect(paths)
    try:
        con.register("candidates", pa.table({"event_id": candidate_ids}))
        rows = con.execute(
            "SELECT DISTINCT s.event_id FROM read_parquet(?) s JOIN candidates c USING (event_id)",
            [[str(f) for f in files]],
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def events_glob(paths: Paths) -> str:
    return str(paths.events / "event_month=*" / "*.parquet")


def _require_events(paths: Paths) -> None:
    if not event_files(paths):
        raise FileNotFoundError(f"the event store {paths.events} is empty: run `churn ingest` first")


def events_relation(con, paths: Paths):
    """A DuckDB relation over the whole event store (contract columns + event_month)."""
    _require_events(paths)
    return con.read_parquet(events_glob(paths), hive_partitioning=True)


def read_events(paths: Paths) -> pd.DataFrame:
    """The whole store as pandas (small stores and tests only; features scan with DuckDB)."""
    files = event_files(paths)
    if not files:
        return STORE_SCHEMA.empty_table().to_pandas()
    return pq.ParquetDataset([str(f) for f in files], schema=STORE_SCHEMA).read().to_pandas()


def read_quarantine(paths: Paths) -> pd.DataFrame:
    files = sorted(paths.quarantine.glob("*.parquet")) if paths.quarantine.exists() else []
    if not files:
        return QUARANTINE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f, schema=QUARANTINE_SCHEMA) for f in files]).to_pandas()


def commit_batch(paths: Paths, batch_id: str, events: pa.Table, quarantine: pa.Table,
                 ledger: dict, ledger_sha: str | None) -> None:
    """Publish a batch atomically: all its event files, its quarantine file and its ledger record, or none."""
    stage = paths.staging / batch_id
    if stage.exists():
        shutil.rmtree(stage)
    moves: list[tuple[str, str]] = []
    try:
        if events.num_rows:
            for month, part in _split_by_month(events):
                rel = f"events/event_month={month}/{batch_id}.parquet"
                write_parquet_atomic(part.cast(STORE_SCHEMA), stage / rel)
                moves.append((rel, rel))
        if quarantine.num_rows:
            rel = f"quarantine/{batch_id}.parquet"
            write_parquet_atomic(quarantine.cast(QUARANTINE_SCHEMA), stage / rel)
            moves.append((rel, rel))
        if ledger_sha is not None:
            rel = f"state/ingested/{ledger_sha}.json"
            write_json_atomic(ledger, stage / rel)
            moves.append((rel, rel))
        write_json_atomic({"batch_id": batch_id, "moves": moves}, stage / "COMMIT")
    except BaseException:  # e.g. disk full while staging: nothing was published; free the space now
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _roll_forward(paths, stage)


def _split_by_month(events: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """The table cut into one slice per UTC event month, each sorted by customer and time (one sort)."""
    import numpy as np
    import pyarrow.compute as pc

    month = pc.strftime(pc.cast(events["event_time"], pa.timestamp("us")), format="%Y-%m")
    order = pc.sort_indices(pa.table({"m": month, "c": events["customer_id"], "t": events["event_time"]}),
                            sort_keys=[("m", "ascending"), ("c", "ascending"), ("t", "ascending")])
    events, month = events.take(order), month.take(order).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    ends = np.r_[starts[1:], len(month)]
    for a, b in zip(starts, ends):
        yield str(month[a]), events.slice(int(a), int(b - a))


def _roll_forward(paths: Paths, stage: Path) -> None:
    journal = json.loads((stage / "COMMIT").read_text())
    for src, dst in journal["moves"]:
        s, d = stage / src, paths.home / dst
        if s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            os.replace(s, d)
            _fsync_dir(d.parent)
    shutil.rmtree(stage)


def recover(paths: Paths) -> list[str]:
    """Finish committed batches and drop uncommitted ones left by a crash; returns what was done."""
    done: list[str] = []
    if not paths.staging.exists():
        return done
    for stage in sorted(paths.staging.iterdir()):
        if (stage / "COMMIT").exists():
            _roll_forward(paths, stage)
            done.append(f"rolled forward {stage.name}")
        else:
            shutil.rmtree(stage)
            done.append(f"discarded {stage.name}")
    return done


# ---------------------------------------------------------------- generated data

def write_landing_file(paths: Paths, frame: pd.DataFrame, name: str, schema: pa.Schema) -> Path:
    path = paths.landing / name
    write_parquet_atomic(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    return path


def write_truth(paths: Paths, frames: list[pd.DataFrame]) -> Path:
    path = paths.truth / "customers.parquet"
    write_parquet_atomic(pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False), path)
    return path


def read_truth(paths: Paths) -> pd.DataFrame | None:
    path = paths.truth / "customers.parquet"
    return pq.read_table(path).to_pandas() if path.exists() else None


def store_time_range(paths: Paths) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    """First and last event time in the store, and the number of events."""
    _require_events(paths)
    con = connect(paths)
    try:
        lo, hi, n = con.execute(
            f"SELECT min(event_time), max(event_time), count(*) FROM read_parquet('{events_glob(paths)}')").fetchall()[0]
    finally:
        con.close()
    return pd.Timestamp(lo).tz_convert("UTC"), pd.Timestamp(hi).tz_convert("UTC"), int(n)


def write_snapshots(paths: Paths, frame: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> Path:
    """Store labelled training snapshots (one file per as-of date and horizon, replaced on re-run)."""
    path = paths.home / "snapshots" / f"as_of={as_of.date().isoformat()}" / f"h{horizon_days}.parquet"
    write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def read_snapshots(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


# ---------------------------------------------------------------- scores and win-back lists

def scores_path(paths: Paths, as_of_date: str) -> Path:
    return paths.home / "scores" / f"as_of={as_of_date}" / "scores.parquet"


def write_scores(paths: Paths, frame: pd.DataFrame, schema: pa.Schema, as_of_date: str) -> Path:
    """Publish one day's scores atomically; scoring the same day again replaces the file."""
    path = scores_path(paths, as_of_date)
    write_parquet_atomic(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    return path


def latest_scores_date(paths: Paths) -> str | None:
    days = sorted(p.parent.name.removeprefix("as_of=") for p in (paths.home / "scores").glob("as_of=*/scores.parquet"))
    return days[-1] if days else None


def read_scores(paths: Paths, as_of_date: str | None = None) -> tuple[pd.DataFrame, str]:
    """A day's scores (default: the latest day scored)."""
    day = as_of_date or latest_scores_date(paths)
    if day is None or not scores_path(paths, day).exists():
        raise FileNotFoundError(f"no scores for {day or 'any day'} under {paths.home / 'scores'}: run `churn score` first")
    return pq.read_table(scores_path(paths, day)).to_pandas(), day


def write_winback(paths: Paths, frame: pd.DataFrame, csv_frame: pd.DataFrame, as_of_date: str) -> tuple[Path, Path]:
    """The win-back list as Parquet and spreadsheet-safe CSV, published together.

    Both files are written into a hidden folder that then replaces the day's folder, so a reader
    never sees the Parquet file of one run next to the CSV of another (a crash leaves the old pair,
    or, between the two renames, no folder; the next run clears what a crash left behind).
    """
    root = paths.home / "winback"
    folder = root / f"as_of={as_of_date}"
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(f".as_of={as_of_date}.*"):
        shutil.rmtree(leftover, ignore_errors=True)
    token = os.urandom(6).hex()
    staged, old = root / f".as_of={as_of_date}.new-{token}", root / f".as_of={as_of_date}.old-{token}"
    staged.mkdir()
    write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), staged / "winback.parquet")
    write_bytes_atomic(staged / "winback.csv", csv_frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    if folder.exists():
        os.rename(folder, old)
    os.rename(staged, folder)
    _fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)
    return folder / "winback.parquet", folder / "winback.csv"


def read_contacts(path: Path) -> pd.DataFrame:
    """A contact-history file (CSV or Parquet) with customer_id and contacted_at."""
    if path.suffix.lower() == ".parquet":
        df = pq.read_table(path).to_pandas()
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"customer_id", "contacted_at"} - set(df.columns)
    if missing:
        raise ValueError(f"contact history {path} lacks columns {sorted(missing)}")
    return df


def daily_counts(paths: Paths, first_day: str, last_day: str) -> pd.Series:
    """Stored events per UTC event date in [first_day, last_day] (only those months are read)."""
    days = pd.date_range(first_day, last_day, freq="D").strftime("%Y-%m-%d").tolist()
    files = event_files(paths, days)
    if not files:
        return pd.Series(dtype="int64")
    lo = pd.Timestamp(first_day, tz="UTC").value // 1000
    hi = (pd.Timestamp(last_day, tz="UTC") + pd.Timedelta(days=1)).value // 1000
    con = connect(paths)
    try:
        df = con.execute("SELECT epoch_us(event_time) // 86400000000 AS day, count(*) AS n FROM read_parquet(?) "
                         "WHERE epoch_us(event_time) >= ? AND epoch_us(event_time) < ? GROUP BY day",
                         [[str(f) for f in files], lo, hi]).df()
    finally:
        con.close()
    index = pd.to_datetime(df["day"] * 86_400, unit="s").dt.strftime("%Y-%m-%d")
    return pd.Series(df["n"].to_numpy(dtype="int64"), index=index.to_numpy()).sort_index()
