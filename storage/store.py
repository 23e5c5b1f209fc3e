"""The event store: a Delta Lake table partitioned by event month, a ledger of ingested files, journaled batch
commits, queries.

The events are a Delta table (`<home>/events`, partition column `event_month`): each ingest batch is one Delta
transaction, so DuckDB, Spark or any Delta reader sees a consistent version, other Delta writers may append
beside churn, and any version can be read again (`event_files(paths, version=...)`). A batch also writes a
quarantine file and a ledger record, outside the table, so it is committed through a journal: the batch's
journal (naming everything it will write), its staged side files and its event files (not yet in the table's log:
invisible), then the Delta commit, which carries the batch's sequence number as a Delta application
transaction (`txn`) and is the commit point, then the side files renamed into place. `recover` rolls a
committed batch forward and discards an uncommitted one (deleting its unreferenced event files), so a crash at
any point leaves the store as if the batch never started or had fully finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn.errors import UserError
from expectations.contract import COLUMN_NAMES, EVENT_SCHEMA, STORE_SCHEMA
from expectations.quarantine import QUARANTINE_SCHEMA
from storage.atomic import file_lock, fsync_dir, write_json_atomic, write_parquet_atomic
from storage.layout import Paths

# DuckDB stays inside this budget and spills to <home>/.duckdb-tmp/<pid> beyond it (the 100M-event
# feature build peaks at about 2 GB); result order comes from ORDER BY, never from insertion order.
QUERY_MEMORY_LIMIT = "3GB"


def connect(paths: Paths):
    """A DuckDB connection for queries over the store: bounded memory, spill files under the data folder."""
    import duckdb

    spill = paths.duckdb_tmp / str(os.getpid())  # per process: concurrent commands never share
    return duckdb.connect(config={"memory_limit": QUERY_MEMORY_LIMIT, "preserve_insertion_order": False,
                                  "temp_directory": str(spill)})


def store_lock(paths: Paths):
    """Exclusive lock on the store: one writer at a time, across processes."""
    return file_lock(paths.lock_file)


def commit_lock(paths: Paths, exclusive: bool):
    """The commit lock: a batch's renames hold it exclusively, readers of files outside the event table (contacts)
    hold it shared while they list them, so a listing sees each batch whole or not at all (files never change once
    in place). Only writers create the lock file."""
    return file_lock(paths.commit_lock_file, exclusive)


# ---------------------------------------------------------------- ledger

def ledger_entry(paths: Paths, sha: str) -> dict | None:
    p = paths.ledger / f"{sha}.json"
    return json.loads(p.read_text()) if p.exists() else None


# ---------------------------------------------------------------- event store

def _months(days: list[str]) -> list[str]:
    return sorted({d[:7] for d in days})


TABLE_APP_ID = "churn-ingest"  # the Delta application id (txn action) of churn's own ingest commits
PARTITION = "event_month"
JOURNAL = "JOURNAL"  # a batch's journal in its staging folder (the Delta commit is its commit point)


class UnknownStoreVersion(UserError, LookupError):
    """A Delta table version the event store does not have (or no longer has)."""


class DamagedStore(UserError, RuntimeError):
    """The event table cannot be read as churn's: a damaged log, a missing data file, another schema."""


class ConcurrentAppend(RuntimeError):
    """Another Delta writer committed to the event table after the version a batch's duplicate check read."""


@contextlib.contextmanager
def _delta_errors(paths: Paths, doing: str) -> Iterator[None]:
    """deltalake's errors as churn's: an operating-system failure it wraps in text (`os error 28`) becomes the OSError
    it was (so a full disk stays exit 4 and is never taken for a bad file); a log it cannot read, DamagedStore."""
    import re

    from storage.tracking import NEEDS_A_PERSON

    def wrapped(e: BaseException) -> OSError | None:
        code = re.search(r"os error (\d+)", str(e))
        return None if code is None else OSError(int(code.group(1)), f"{os.strerror(int(code.group(1)))} while "
                                                                      f"{doing} {paths.events}")

    try:
        yield
    except (UserError, ConcurrentAppend):
        raise
    except OSError as e:
        os_error = wrapped(e) if e.errno is None else None
        if os_error is None:
            raise
        raise os_error from e
    except Exception as e:  # noqa: BLE001 - deltalake's own error types
        os_error = wrapped(e)
        if os_error is not None and os_error.errno in NEEDS_A_PERSON:
            raise os_error from e
        raise DamagedStore(f"the event table {paths.events} cannot be read ({doing}): {str(e).splitlines()[0]}; "
                           f"it was damaged outside churn (restore the file, or the table to an older version with "
                           f"deltalake's DeltaTable.restore)") from None


def table_schema() -> pa.Schema:
    """The event table's schema: the stored columns and the partition column."""
    return STORE_SCHEMA.append(pa.field(PARTITION, pa.string()))


def event_table(paths: Paths, version: int | None = None):
    """The event store's Delta table at `version` (default: the latest), or None while nothing was committed.
    A store of plain Parquet files from before Delta is converted in place first (once, under the store lock)."""
    from deltalake import DeltaTable

    if not _is_table(paths):
        if not plain_files(paths):  # nothing, or only the files of a first batch being written
            return None
        convert_plain_store(paths)
    if version is not None and version > _latest(paths):
        raise UnknownStoreVersion(f"the event store {paths.events} has no version {version} (it is at version "
                                  f"{_latest(paths)})")
    with _delta_errors(paths, f"reading version {version}" if version is not None else "reading"):
        table = DeltaTable(paths.events, version=version)
    _check_layout(paths, table)
    return table


def _is_table(paths: Paths) -> bool:
    """Whether the event folder holds a committed Delta table (a `_delta_log` with a first commit)."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(str(paths.events))


def _latest(paths: Paths) -> int:
    from deltalake import DeltaTable

    with _delta_errors(paths, "reading"):
        return DeltaTable(paths.events, without_files=True).version()


def plain_files(paths: Paths) -> list[Path]:
    """The Parquet files of a store from before Delta (no committed table): every month folder's file except those a
    staged batch's journal names (the first batch of a new table, being written)."""
    files = sorted(paths.events.glob(f"{PARTITION}=*/*.parquet"))
    if not files or not paths.staging.exists():
        return files
    staged = set()
    for journal in paths.staging.glob(f"*/{JOURNAL}"):
        try:
            staged.update(paths.events / rel for rel in json.loads(journal.read_text())["event_files"])
        except (OSError, ValueError, KeyError):
            continue
    return [f for f in files if f not in staged]


def _check_layout(paths: Paths, table) -> None:
    """DamagedStore unless the table is churn's event table: partitioned by `PARTITION` only, with the stored columns
    in their types (a table another writer created with other columns would take churn's rows and lose them)."""
    parts = list(table.metadata().partition_columns)
    have = pa.schema(table.schema().to_arrow())
    want = table_schema()

    def kind(t: pa.DataType) -> str:
        return "string" if t in (pa.string(), pa.large_string(), pa.string_view()) else str(t)

    wrong = [f"{f.name} ({kind(have.field(f.name).type) if f.name in have.names else 'missing'}, not {kind(f.type)})"
             for f in want if f.name not in have.names or kind(have.field(f.name).type) != kind(f.type)]
    extra = [n for n in have.names if n not in want.names]
    if parts != [PARTITION] or wrong or extra:
        raise DamagedStore(f"the Delta table {paths.events} is not churn's event table: "
                           + "; ".join(x for x in (
                               f"partitioned by {parts or 'nothing'}, not ['{PARTITION}']" if parts != [PARTITION] else "",
                               f"columns {', '.join(wrong)}" if wrong else "",
                               f"extra columns {', '.join(extra)}" if extra else "") if x)
                           + ": move it aside, or use another data folder")


def convert_plain_store(paths: Paths) -> None:
    """Make a store written before Delta (month folders of Parquet files, no committed table) a Delta table in place,
    under the store lock (writers convert in `recover`, which they call holding it)."""
    try:
        with store_lock(paths):
            recover(paths)
    except PermissionError as e:
        raise UserError(f"the event store {paths.events} predates Delta Lake and is converted on first use, but "
                        f"{e.filename or paths.home} is not writable: run `churn ingest` once where it is") from None


def store_version(paths: Paths) -> int | None:
    """The event table's latest version (None while it holds nothing)."""
    table = event_table(paths)
    return None if table is None else table.version()


def event_files(paths: Paths, dates: list[str] | None = None, version: int | None = None) -> list[Path]:
    """The event files of the table's latest version (or of `version`), optionally only the partitions holding the
    given event dates (YYYY-MM-DD). A Delta version is immutable: a listing is always whole batches.

    The store is partitioned by month, not day: a batch then writes a few files instead of one per
    day, and scans stay fast (12,000 one-day files of a 10M-event store scanned 5x slower than 400).
    """
    table = event_table(paths, version)
    if table is None:
        return []
    if dates is None:
        uris = table.file_uris()
    else:
        months = ", ".join(f"'{m}'" for m in _months(dates))
        uris = table.file_uris(file_pruning_predicate=f"{PARTITION} IN ({months})")
    files = sorted(Path(u.removeprefix("file://")) for u in uris)
    missing = [f for f in files if not f.exists()]
    if missing:
        raise DamagedStore(f"the event table {paths.events} (version {table.version()}) names {len(missing)} file(s) "
                           f"that are gone, e.g. {missing[0]}: it was damaged outside churn (restore the files, or "
                           f"the table to an older version with deltalake's DeltaTable.restore)")
    return files


def unfinished_targets(paths: Paths) -> set[Path]:
    """Files already in place of committed batches whose renames did not all happen (a writer killed
    between two of them): readers leave them out until `recover` (the next ingest) finishes the batch,
    so a batch is seen whole or not at all even after a crash."""
    out: set[Path] = set()
    if not paths.staging.exists():
        return out
    for journal in [*paths.staging.glob("*/COMMIT"), *paths.staging.glob(f"*/{JOURNAL}")]:
        try:
            moves = json.loads(journal.read_text())["moves"]
        except (OSError, ValueError, KeyError):  # renamed away meanwhile: finished
            continue
        if any((journal.parent / src).exists() for src, _ in moves):
            out.update(paths.home / dst for _, dst in moves)
    return out


def stored_ids_among(paths: Paths, candidate_ids, version: int | None = None) -> set[str]:
    """Which of the candidate event ids are already stored, in any month (call under the store lock).

    Every partition is read, not only the batch's months: the same event with a corrected time in
    another month is still the same event. Chosen by measurement: DuckDB reading only the event_id
    column of every file costs 5.5-6.1 s for a 1M-id batch against a 10M-event store (0.4-0.6 s for
    one month), small next to validating that batch; a separate id index would be a second copy of
    the ids to keep consistent through the journal, for a few seconds per million events.
    `version`: the table version to look in (default: the latest).
    """
    files = event_files(paths, version=version)
    if not files or len(candidate_ids) == 0:
        return set()
    con = connect(paths)
    try:
        con.register("candidates", pa.table({"event_id": pa.array([str(i) for i in candidate_ids], pa.string())}))
        rows = con.execute(
            "SELECT DISTINCT s.event_id FROM read_parquet(?) s JOIN candidates c USING (event_id)",
            [[str(f) for f in files]],
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}



def stored_events_among(paths: Paths, candidate_ids, version: int | None = None) -> pd.DataFrame:
    """The stored events (contract columns) whose ids are among the candidates, in any month, at `version` (default
    the latest; call under the store lock): for events folded from several lines, whose stored values decide
    duplicate or conflict."""
    files = event_files(paths, version=version)
    if not files or len(candidate_ids) == 0:
        return EVENT_SCHEMA.empty_table().to_pandas()
    con = connect(paths)
    try:
        con.register("candidates", pa.table({"event_id": pa.array([str(i) for i in candidate_ids], pa.string())}))
        table = con.sql(f"SELECT {', '.join(f's.{c}' for c in EVENT_SCHEMA.names)} FROM read_parquet(?) s "
                        "JOIN candidates c USING (event_id)", params=[[str(f) for f in files]]).to_arrow_table()
    finally:
        con.close()
    return table.cast(EVENT_SCHEMA).to_pandas()


class EmptyStore(UserError, FileNotFoundError):
    """The event store holds no events yet."""


AS_OF_SLACK = pd.Timedelta(days=1)  # an as-of date may lie this far past the last stored event


class OutsideStore(UserError, ValueError):
    """A date before the first stored event."""


def require_events(paths: Paths) -> None:
    """Raise EmptyStore (saying what waits in the landing folder) unless the store holds events."""
    if event_files(paths):
        return
    from storage.sources import landing_files

    waiting = len(landing_files(paths))
    hint = (f"{waiting} file(s) wait in {paths.landing}: run `churn ingest`" if waiting else
            f"no files in {paths.landing} either: run `churn generate` or `churn ingest FILE`")
    raise EmptyStore(f"the event store {paths.events} is empty: {hint}")


def require_covered(paths: Paths, as_of: pd.Timestamp,
                    version: int | None = None) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    """The store's time range (as `store_time_range`); OutsideStore when `as_of` is before its first event,
    or more than `AS_OF_SLACK` after its last (every customer would look gone, every label churned)."""
    first, last, n = store_time_range(paths, version)
    if as_of < first:
        raise OutsideStore(f"as-of date {as_of.date()} is before the first stored event: the store holds events "
                           f"from {first.date()} to {last.date()}")
    require_not_after(first, last, as_of)
    return first, last, n


def require_not_after(first: pd.Timestamp, last: pd.Timestamp, as_of: pd.Timestamp) -> None:
    """OutsideStore when `as_of` lies more than `AS_OF_SLACK` after the last stored event."""
    if as_of > last + AS_OF_SLACK:
        raise OutsideStore(f"as-of date {as_of.date()} is after the last stored event ({last.date()}): the store "
                           f"holds events from {first.date()} to {last.date()}, so every customer would look gone; "
                           f"ingest the newer events first, or use an --as-of up to {(last + AS_OF_SLACK).date()}")


def events_relation(con, paths: Paths, version: int | None = None):
    """A DuckDB relation over the whole event store (contract columns + event_month) at its latest version (or
    `version`): exactly the files of that Delta version, never a glob that could catch a batch not committed."""
    files = event_files(paths, version=version)
    if not files:
        require_events(paths)
    return con.read_parquet([str(f) for f in files], hive_partitioning=True)


def read_events(paths: Paths, version: int | None = None) -> pd.DataFrame:
    """The whole store (at `version`, default the latest) as pandas (small stores and tests only; features scan
    with DuckDB)."""
    files = event_files(paths, version=version)
    if not files:
        return STORE_SCHEMA.empty_table().to_pandas()
    return pq.ParquetDataset([str(f) for f in files], schema=STORE_SCHEMA).read().to_pandas()


def read_quarantine(paths: Paths, folder: Path | None = None) -> pd.DataFrame:
    """Every quarantined row of `folder` (default: the events' quarantine), committed batches only (the
    quarantine contract)."""
    folder = paths.quarantine if folder is None else folder
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    unfinished = unfinished_targets(paths)
    files = [f for f in files if f not in unfinished]
    if not files:
        return QUARANTINE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f, schema=QUARANTINE_SCHEMA) for f in files]).to_pandas()


def batch_table(frame: pd.DataFrame, columns, schema: pa.Schema, batch_id: str) -> pa.Table:
    """A batch's rows in a store's schema (the contract `columns` + the batch id for lineage)."""
    table = pa.Table.from_pandas(frame[list(columns)], schema=schema, preserve_index=False)
    return table.append_column("ingest_batch", pa.array([batch_id] * table.num_rows, pa.string()))


def events_table(events: pd.DataFrame, batch_id: str) -> pa.Table:
    """A batch's events in the store's schema (contract columns + the batch id for lineage)."""
    return batch_table(events, COLUMN_NAMES, EVENT_SCHEMA, batch_id)


def without_ids(table: pa.Table, ids: set[str], column: str = "event_id") -> pa.Table:
    """The rows whose `column` is not among `ids` (those already stored)."""
    if not ids:
        return table
    import pyarrow.compute as pc

    return table.filter(pc.invert(pc.is_in(table[column], value_set=pa.array(sorted(ids), pa.string()))))


def commit_staged(paths: Paths, batch_id: str, tables: list[tuple[str, pa.Table, pa.Schema]],
                  records: list[tuple[str, dict]]) -> None:
    """Publish files atomically, all or none (call under the store lock): each (path relative to the home,
    table, schema) with rows and each (path, JSON record) is written into the batch's staging folder, then
    the COMMIT journal naming them, then they are rolled forward into place. A crash before COMMIT leaves
    nothing published; after it, `recover` finishes the moves."""
    stage = paths.staging / batch_id
    if stage.exists():
        shutil.rmtree(stage)
    moves: list[tuple[str, str]] = []
    try:
        for rel, table, schema in tables:
            if table.num_rows:
                write_parquet_atomic(table.cast(schema), stage / rel)
                moves.append((rel, rel))
        for rel, record in records:
            write_json_atomic(record, stage / rel)
            moves.append((rel, rel))
        write_json_atomic({"batch_id": batch_id, "moves": moves}, stage / "COMMIT")
    except BaseException:  # e.g. disk full while staging: nothing was published; free the space now
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _roll_forward(paths, stage)


LATEST = "latest"  # commit_batch's read_version: the table as it is when the batch commits


def commit_batch(paths: Paths, batch_id: str, events: pa.Table, quarantine: pa.Table,
                 ledger: dict, ledger_sha: str | None, read_version: int | None | str = LATEST) -> None:
    """Publish a batch atomically (call under the store lock): its events as one Delta transaction (one file per
    month), its quarantine file and its ledger record, or none of them.

    Order: the journal naming every file the batch writes; the side files staged; the event files written into the
    table's folder (no reader sees a file the log does not name); the Delta commit, carrying the batch's sequence
    number as the application transaction `TABLE_APP_ID` (the commit point: `recover` asks the table whether it
    happened); the side files renamed into place. A failure before the commit takes every file away again.

    `read_version`: the table version the batch's duplicate check read (None: there was no table). The commit is
    made against that version and refused if any writer committed after it (ConcurrentAppend, nothing published):
    another Delta writer may have appended the same events meanwhile, so the caller checks again and retries."""
    months = list(_split_by_month(events)) if events.num_rows else []
    if read_version == LATEST:
        table = event_table(paths)
    else:
        table = event_table(paths, read_version) if read_version is not None else None
    seq = (table.transaction_version(TABLE_APP_ID) or 0) + 1 if table is not None else 1
    side = [(f"quarantine/{batch_id}.parquet", quarantine, QUARANTINE_SCHEMA)] if quarantine.num_rows else []
    records = [(f"state/ingested/{ledger_sha}.json", ledger)] if ledger_sha is not None else []
    journal = {"batch_id": batch_id, "delta_seq": seq,
               "event_files": [f"{PARTITION}={month}/{batch_id}.parquet" for month, _ in months],
               "moves": [(rel, rel) for rel, *_ in side] + [(rel, rel) for rel, _ in records]}
    stage = paths.staging / batch_id
    if stage.exists():
        shutil.rmtree(stage)
    try:
        write_json_atomic(journal, stage / JOURNAL)
        for rel, table_part, schema in side:
            write_parquet_atomic(table_part.cast(schema), stage / rel)
        for rel, record in records:
            write_json_atomic(record, stage / rel)
        (paths.events / "_delta_log").mkdir(parents=True, exist_ok=True)  # a table being created, not a plain store
        adds = []
        for (month, part), rel in zip(months, journal["event_files"]):
            write_parquet_atomic(part.cast(STORE_SCHEMA), paths.events / rel)
            adds.append(_add_action(paths, rel, month, part.num_rows))
        _delta_commit(paths, table, adds, seq, batch_id)
    except BaseException as e:  # e.g. disk full: nothing was published (unless the commit itself went through)
        if not _committed(paths, seq):
            _discard(paths, stage, journal)
            if isinstance(e, Exception) and _moved_on(paths, table):
                raise ConcurrentAppend(f"another writer committed to {paths.events} after version "
                                       f"{None if table is None else table.version()}") from e
        raise
    _roll_forward(paths, stage, JOURNAL)


def _add_action(paths: Paths, rel: str, month: str, rows: int):
    from deltalake.transaction import AddAction

    st = (paths.events / rel).stat()
    # only the row count as statistics: min/max are optional in Delta and a wrong one would make readers skip rows
    return AddAction(rel, st.st_size, {PARTITION: month}, int(st.st_mtime * 1000), True, json.dumps({"numRecords": rows}))


def _delta_commit(paths: Paths, table, adds: list, seq: int, batch_id: str) -> None:
    from deltalake import CommitProperties, Schema, Transaction
    from deltalake.transaction import create_table_with_add_actions

    # no retry: a commit that finds another writer's after the version read is refused (see commit_batch)
    props = CommitProperties(app_transactions=[Transaction(TABLE_APP_ID, seq)], max_commit_retries=0,
                             custom_metadata={"churn.batch_id": batch_id})
    if _moved_on(paths, table):  # checked first: after a refused commit, "is our seq in the table?" can mislead
        raise ConcurrentAppend(f"another writer committed to {paths.events} after the version read")
    with _delta_errors(paths, "committing a batch to"):
        if table is None:
            create_table_with_add_actions(str(paths.events), Schema.from_arrow(table_schema()), adds, mode="error",
                                          partition_by=[PARTITION], name="events", commit_properties=props)
        else:
            table.create_write_transaction(adds, mode="append", schema=table.schema(), partition_by=[PARTITION],
                                           commit_properties=props)


def _moved_on(paths: Paths, table) -> bool:
    """Whether the event table has a commit after `table`'s version (or exists at all, for None)."""
    if not _is_table(paths):
        return False
    return table is None or _latest(paths) > table.version()


def _committed(paths: Paths, seq: int) -> bool:
    """Whether churn's ingest commit number `seq` is in the event table (its application transaction)."""
    table = event_table(paths)
    return table is not None and (table.transaction_version(TABLE_APP_ID) or 0) >= seq


def _discard(paths: Paths, stage: Path, journal: dict) -> None:
    """Take away every file of a batch that did not commit: its event files (no version names them) and its stage."""
    for rel in journal.get("event_files", []):
        target = paths.events / rel
        for f in (target, target.with_name(f".{target.name}.tmp")):
            f.unlink(missing_ok=True)
    shutil.rmtree(stage, ignore_errors=True)


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


def _roll_forward(paths: Paths, stage: Path, journal_name: str = "COMMIT") -> None:
    journal = json.loads((stage / journal_name).read_text())
    with commit_lock(paths, exclusive=True):  # readers list the store before or after the batch, not during
        for src, dst in journal["moves"]:
            s, d = stage / src, paths.home / dst
            if s.exists():
                d.parent.mkdir(parents=True, exist_ok=True)
                os.replace(s, d)
                fsync_dir(d.parent)
    shutil.rmtree(stage)


def recover(paths: Paths) -> list[str]:
    """Finish committed batches and drop uncommitted ones left by a crash, then convert a store written before
    Delta Lake (call under the store lock); returns what was done."""
    done: list[str] = []
    for stage in sorted(paths.staging.iterdir()) if paths.staging.exists() else []:
        done.append(_recover_stage(paths, stage))
    if not _is_table(paths) and plain_files(paths):  # also after a conversion that was killed half-way
        _convert_in_place(paths)
        done.append("converted the event store to a Delta table")
    return done


def _convert_in_place(paths: Paths) -> None:
    """Every committed file of a plain-Parquet store becomes version 0 of a Delta table (old batches finished)."""
    from deltalake import Field, Schema, convert_to_deltalake

    shutil.rmtree(paths.events / "_delta_log", ignore_errors=True)  # a conversion killed before its first commit
    with _delta_errors(paths, "converting the plain Parquet store to Delta"):
        convert_to_deltalake(str(paths.events), partition_by=Schema([Field(PARTITION, "string")]),
                             partition_strategy="hive", name="events")


def _recover_stage(paths: Paths, stage: Path) -> str:
    """Roll one staged batch forward if it committed, else take it away; says which."""
    if (stage / "COMMIT").exists():  # a batch without events (contacts): the marker is its commit point
        _roll_forward(paths, stage)
        return f"rolled forward {stage.name}"
    if (stage / JOURNAL).exists():
        journal = json.loads((stage / JOURNAL).read_text())
        if _is_table(paths) and _committed(paths, journal["delta_seq"]):
            _roll_forward(paths, stage, JOURNAL)
            return f"rolled forward {stage.name}"
        _discard(paths, stage, journal)
        return f"discarded {stage.name}"
    shutil.rmtree(stage)
    return f"discarded {stage.name}"


def store_time_range(paths: Paths, version: int | None = None) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    """First and last event time in the store (at `version`, default the latest), and the number of events."""
    files = event_files(paths, version=version)
    if not files:
        require_events(paths)
    con = connect(paths)
    try:
        lo, hi, n = con.execute("SELECT min(event_time), max(event_time), count(*) FROM read_parquet(?)",
                                [[str(f) for f in files]]).fetchall()[0]
    finally:
        con.close()
    return pd.Timestamp(lo).tz_convert("UTC"), pd.Timestamp(hi).tz_convert("UTC"), int(n)


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


def customer_days(paths: Paths, origin: pd.Timestamp, before: pd.Timestamp) -> pd.DataFrame:
    """Per customer and day (whole days since `origin`) with events before `before`: purchases, visits, complaints,
    and the sum of log(amount) over the purchases (what the simulator's events-only oracle reads)."""
    files = event_files(paths)
    if not files:
        require_events(paths)
    lo, hi = origin.value // 1000, before.value // 1000
    con = connect(paths)
    try:
        return con.execute(
            "SELECT customer_id, CAST((epoch_us(event_time) - ?) // 86400000000 AS INTEGER) AS day, "
            "count(*) FILTER (WHERE event_type = 'purchase') AS purchases, "
            "count(*) FILTER (WHERE event_type = 'visit') AS visits, "
            "count(*) FILTER (WHERE event_type = 'complaint') AS complaints, "
            "coalesce(sum(ln(amount)) FILTER (WHERE event_type = 'purchase' AND amount > 0), 0) AS log_amount "
            "FROM read_parquet(?) WHERE epoch_us(event_time) >= ? AND epoch_us(event_time) < ? "
            "AND event_type IN ('purchase', 'visit', 'complaint') GROUP BY ALL ORDER BY day",
            [lo, [str(f) for f in files], lo, hi]).df()
    finally:
        con.close()
def window_activity(paths: Paths, customer_ids, start: pd.Timestamp, end: pd.Timestamp,
                    activity_types: tuple[str, ...]) -> pd.DataFrame:
    """Per customer of `customer_ids` (index customer_id): `retained`, 1 if they have an event of
    `activity_types` in (start, end] (the label's rule), else 0, and `spend`, the sum of their purchase amounts
    in that window (0 if none). Only the months the window touches are read."""
    days = pd.date_range(start.normalize(), end.normalize(), freq="D").strftime("%Y-%m-%d").tolist()
    ids = pd.Index(pd.Series(list(customer_ids), dtype=str).unique(), name="customer_id")
    files = event_files(paths, days)
    out = pd.DataFrame({"retained": 0, "spend": 0.0}, index=ids)
    if not files or not len(ids):
        return out
    con = connect(paths)
    try:
        con.register("wanted", pa.table({"customer_id": pa.array(ids.tolist(), pa.string())}))
        df = con.execute(
            "SELECT e.customer_id, "
            "max(CASE WHEN list_contains(?::VARCHAR[], e.event_type) THEN 1 ELSE 0 END) AS retained, "
            "CAST(sum(CASE WHEN e.event_type = 'purchase' THEN CAST(e.amount AS DECIMAL(18, 4)) ELSE 0 END) "
            "AS DOUBLE) AS spend "  # exact: a parallel float sum could change in the last bit between runs
            "FROM read_parquet(?) e JOIN wanted w ON e.customer_id = w.customer_id "
            "WHERE e.event_time > ? AND e.event_time <= ? GROUP BY e.customer_id",
            [list(activity_types), [str(f) for f in files], start.to_pydatetime(), end.to_pydatetime()]).df()
    finally:
        con.close()
    df = df.set_index(df["customer_id"].astype(str))
    out.loc[df.index, "retained"] = df["retained"].astype("int64").to_numpy()
    out.loc[df.index, "spend"] = df["spend"].astype("float64").fillna(0.0).to_numpy()
    return out
