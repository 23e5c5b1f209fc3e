"""The store's commit protocol: a crash at any step leaves no partial batch visible."""

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from expectations.contract import STORE_SCHEMA
from expectations.quarantine import QUARANTINE_SCHEMA
from storage import atomic, store
from tests.conftest import NOW


def _events(n=3):
    t = pa.array([NOW.value // 1000 + i * 86_400_000_000 for i in range(n)], pa.timestamp("us", tz="UTC"))
    cols = {f.name: pa.nulls(n, f.type) for f in STORE_SCHEMA}
    cols.update(event_id=pa.array([f"e{i}" for i in range(n)]), customer_id=pa.array(["c"] * n),
                event_type=pa.array(["visit"] * n), event_time=t)
    return pa.table(cols, schema=STORE_SCHEMA)


def test_commit_publishes_all_files_and_the_ledger(paths):
    store.commit_batch(paths, "b1", _events(), QUARANTINE_SCHEMA.empty_table(), {"rows_in": 3}, "sha1")
    assert len(store.event_files(paths)) == 1  # three days of one month: one file
    assert store.ledger_entry(paths, "sha1") == {"rows_in": 3}
    assert not any(paths.staging.iterdir())


def test_recover_discards_a_batch_that_never_committed(paths, monkeypatch):
    """Killed before its Delta commit (here: the commit fails): the batch's event files are in the table's folder
    but no version names them, so no reader sees them; recover takes them and the stage away."""
    store.commit_batch(paths, "b0", _events(1), QUARANTINE_SCHEMA.empty_table(), {}, None)
    monkeypatch.setattr(store, "_delta_commit", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    monkeypatch.setattr(store, "_discard", lambda *a: None)  # as a SIGKILL would: no clean-up on the way out
    with pytest.raises(KeyboardInterrupt):
        store.commit_batch(paths, "b2", _events(3), _quarantine(), {"rows_in": 4}, "sha2")
    monkeypatch.undo()
    assert (paths.events / "event_month=2025-06" / "b2.parquet").exists() and (paths.staging / "b2").exists()
    assert [p.name for p in store.event_files(paths)] == ["b0.parquet"] and len(store.read_events(paths)) == 1
    assert store.recover(paths) == ["discarded b2"]
    assert not (paths.events / "event_month=2025-06" / "b2.parquet").exists() and not (paths.staging / "b2").exists()
    assert store.ledger_entry(paths, "sha2") is None and store.read_quarantine(paths).empty


def test_recover_finishes_a_batch_that_committed_but_did_not_place_its_side_files(paths, monkeypatch):
    """Killed after the Delta commit, before the quarantine file and the ledger record were renamed into place:
    readers see the events; recover (the next ingest) places the rest, so the file is not ingested twice."""
    monkeypatch.setattr(store, "_roll_forward", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        store.commit_batch(paths, "b3", _events(3), _quarantine(), {"rows_in": 4}, "sha3")
    monkeypatch.undo()
    assert len(store.read_events(paths)) == 3 and store.ledger_entry(paths, "sha3") is None
    assert store.read_quarantine(paths).empty  # staged, not yet in place
    assert store.recover(paths) == ["rolled forward b3"]
    assert store.ledger_entry(paths, "sha3") == {"rows_in": 4} and len(store.read_quarantine(paths)) == 1
    assert len(store.read_events(paths)) == 3 and not any(paths.staging.iterdir())


def test_a_plain_parquet_store_from_before_delta_is_converted_with_its_unfinished_batch(paths):
    """A store written by the old protocol (month folders of Parquet, a batch killed half-way through its renames):
    the next writer finishes the batch, then makes the folder a Delta table holding every committed event."""
    for i, d in enumerate(["2025-05", "2025-06"]):
        atomic.write_parquet_atomic(_events(1), paths.events / f"event_month={d}" / f"old{i}.parquet")
    stage, moves = paths.staging / "b4", []
    for d in ["2025-07", "2025-08"]:
        rel = f"events/event_month={d}/b4.parquet"
        atomic.write_parquet_atomic(_events(1), stage / rel)
        moves.append([rel, rel])
    atomic.write_bytes_atomic(stage / "COMMIT", json.dumps({"batch_id": "b4", "moves": moves}).encode())
    (paths.home / moves[0][1]).parent.mkdir(parents=True, exist_ok=True)
    (stage / moves[0][0]).rename(paths.home / moves[0][1])  # the crash came after the first rename
    assert store.recover(paths) == ["rolled forward b4", "converted the event store to a Delta table"]
    assert (paths.events / "_delta_log").is_dir() and store.store_version(paths) == 0
    assert sorted(p.name for p in store.event_files(paths)) == ["b4.parquet", "b4.parquet", "old0.parquet",
                                                                 "old1.parquet"]
    store.commit_batch(paths, "b5", _events(2), QUARANTINE_SCHEMA.empty_table(), {}, None)  # appends as version 1
    assert store.store_version(paths) == 1 and len(store.read_events(paths)) == 6


def test_a_reader_converts_a_plain_store_it_finds(paths):
    atomic.write_parquet_atomic(_events(2), paths.events / "event_month=2025-06" / "old.parquet")
    assert len(store.read_events(paths)) == 2 and store.store_version(paths) == 0


def test_every_version_of_the_store_reads_back_exactly_what_it_held(paths):
    store.commit_batch(paths, "b1", _batch_over_months("b1", 9), QUARANTINE_SCHEMA.empty_table(), {}, None)
    store.commit_batch(paths, "b2", _batch_over_months("b2", 6), _quarantine(), {}, "sha")  # quarantine only: a
    store.commit_batch(paths, "b3", _events(0), _quarantine(), {}, "sha-empty")  # version that adds no event
    assert store.store_version(paths) == 2
    assert sorted(store.read_events(paths, version=0)["event_id"]) == sorted(f"b1-{i}" for i in range(9))
    assert len(store.read_events(paths, version=1)) == len(store.read_events(paths, version=2)) == 15
    assert store.store_time_range(paths, version=0)[2] == 9
    assert len(store.event_files(paths, [str((NOW + pd.Timedelta(days=31)).date())], version=0)) == 1
    with pytest.raises(store.UnknownStoreVersion, match="has no version 7.*at version 2"):
        store.event_files(paths, version=7)


def _quarantine() -> pa.Table:
    row = {f.name: None for f in QUARANTINE_SCHEMA}
    return pa.Table.from_pylist([{**row, **{k: "x" for k, f in zip(row, QUARANTINE_SCHEMA) if f.type == pa.string()}}],
                                schema=QUARANTINE_SCHEMA)


def test_atomic_write_never_leaves_a_partial_target(paths, monkeypatch):
    target = paths.home / "x.parquet"
    atomic.write_parquet_atomic(_events(2), target)
    import pyarrow.parquet as pq

    real_write = pq.write_table

    def boom(table, where, **k):  # a write that fails half-way, as a full disk does
        real_write(table.slice(0, 1), where, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_parquet_atomic(_events(5), target)
    assert pq.read_table(target).num_rows == 2  # the old file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.parquet"]  # no temp file left taking space


def test_atomic_bytes_write_failure_removes_its_temp_file(paths, monkeypatch):
    target = paths.home / "y.json"
    atomic.write_bytes_atomic(target, b"old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError):
        atomic.write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["y.json"]


def _batch_over_months(tag: str, n: int = 90) -> pa.Table:
    """n events over three months (30 days apart), ids unique to the batch."""
    day = 86_400_000_000
    t = pa.array([NOW.value // 1000 + (i % 3) * 31 * day for i in range(n)], pa.timestamp("us", tz="UTC"))
    cols = {f.name: pa.nulls(n, f.type) for f in STORE_SCHEMA}
    cols.update(event_id=pa.array([f"{tag}-{i}" for i in range(n)]), customer_id=pa.array(["c"] * n),
                event_type=pa.array(["visit"] * n), event_time=t)
    return pa.table(cols, schema=STORE_SCHEMA)


def test_a_concurrent_reader_sees_whole_multi_month_batches_only(paths):
    """A reader listing and counting the store while batches of three months each are committed (a Delta
    transaction each) must only ever see whole batches: every count a multiple of the batch size."""
    import threading

    import pyarrow.parquet as pq

    n, batches = 90, 60
    store.commit_batch(paths, "b000", _batch_over_months("b000", n), QUARANTINE_SCHEMA.empty_table(), {}, None)
    done, seen = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            files = store.event_files(paths)
            seen.append(sum(pq.read_metadata(f).num_rows for f in files))
            rel = store.events_relation(store.connect(paths), paths)  # DuckDB reads exactly that listing
            seen.append(rel.count("*").fetchall()[0][0])
            seen.append(store.store_time_range(paths)[2])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for b in range(1, batches):
            store.commit_batch(paths, f"b{b:03d}", _batch_over_months(f"b{b:03d}", n), QUARANTINE_SCHEMA.empty_table(),
                               {}, None)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 10
    assert all(c % n == 0 for c in seen), sorted({c for c in seen if c % n})
    assert store.store_time_range(paths)[2] == n * batches


def test_a_conversion_killed_before_its_first_commit_is_done_again_and_hides_nothing(paths):
    """A plain store whose conversion died after creating `_delta_log` (a temporary commit file, no commit): readers
    still find the old events, by converting again, and so does the next writer."""
    for d in ["2025-05", "2025-06"]:
        atomic.write_parquet_atomic(_events(2), paths.events / f"event_month={d}" / "old.parquet")
    (paths.events / "_delta_log").mkdir(parents=True)
    (paths.events / "_delta_log" / "_commit_0123.json.tmp").write_text('{"commitInfo"')
    assert len(store.read_events(paths)) == 4 and store.store_version(paths) == 0
    store.commit_batch(paths, "b1", _batch_over_months("b1", 3), QUARANTINE_SCHEMA.empty_table(), {}, None)
    assert len(store.read_events(paths)) == 7


def _append_elsewhere(paths, ids):
    from deltalake import write_deltalake

    rows = {f.name: [None] * len(ids) for f in store.table_schema()}
    rows.update(event_id=ids, customer_id=["o"] * len(ids), event_type=["visit"] * len(ids),
                event_time=[NOW.to_pydatetime()] * len(ids), event_month=[str(NOW)[:7]] * len(ids))
    write_deltalake(str(paths.events), pa.Table.from_pydict(rows, schema=store.table_schema()), mode="append",
                    partition_by=[store.PARTITION])


def test_a_commit_after_another_writer_appended_is_refused_and_publishes_nothing(paths):
    store.commit_batch(paths, "b0", _events(1), QUARANTINE_SCHEMA.empty_table(), {}, None)
    read = store.store_version(paths)
    _append_elsewhere(paths, ["e1"])  # the same id the batch below holds, appended after the batch's check
    with pytest.raises(store.ConcurrentAppend):
        store.commit_batch(paths, "b1", _events(3), _quarantine(), {"rows_in": 4}, "sha1", read)
    assert store.store_version(paths) == read + 1 and store.ledger_entry(paths, "sha1") is None
    assert not list(paths.events.glob("event_month=*/b1.parquet")) and not (paths.staging / "b1").exists()


def test_an_ingest_racing_another_writer_checks_again_and_stores_nothing_twice(paths, tmp_path, monkeypatch):
    """Another Delta writer appends some of the file's events between churn's duplicate check and its commit: the
    commit is refused, the check runs again, and those events are counted as duplicates, not stored twice."""
    from flows.ingest import ingest_file
    from tests.conftest import config

    frame = pd.DataFrame({"event_id": [f"e{i}" for i in range(6)], "customer_id": "c1", "event_type": "visit",
                          "event_time": [NOW - pd.Timedelta(days=i) for i in range(6)]})
    src = tmp_path / "events.csv"
    frame.to_csv(src, index=False)
    real, calls = store.stored_ids_among, []

    def check_then_race(p, ids, version=None):
        out = real(p, ids, version)
        calls.append(version)
        if len(calls) == 1:
            store.commit_batch(p, "seed", _events(0), _quarantine(), {}, None)  # the table exists
            _append_elsewhere(p, ["e1", "e2"])
        return out

    monkeypatch.setattr(store, "stored_ids_among", check_then_race)
    r = ingest_file(config(paths, "ingest"), src, now=NOW)
    assert len(calls) == 2 and (r["stored"], r["duplicates"]) == (4, 2), r
    ids = store.read_events(paths)["event_id"]
    assert ids.is_unique and set(ids) == {f"e{i}" for i in range(6)}


@pytest.mark.parametrize("damage", ["foreign schema", "not partitioned", "missing file", "truncated log"])
def test_a_damaged_or_foreign_event_table_is_one_clear_error(paths, damage):
    from deltalake import write_deltalake

    if damage in ("foreign schema", "not partitioned"):
        table = pa.table({"event_id": ["x"], "amount": ["12"], "event_month": ["2025-06"]})
        write_deltalake(str(paths.events), table, partition_by=["event_month"] if damage == "foreign schema" else None)
        needle = "not churn's event table"
    else:
        store.commit_batch(paths, "b0", _events(2), QUARANTINE_SCHEMA.empty_table(), {}, None)
        if damage == "missing file":
            next(paths.events.glob("event_month=*/b0.parquet")).unlink()
            needle = r"names 1 file\(s\) that are gone"
        else:
            log = sorted((paths.events / "_delta_log").glob("*.json"))[-1]
            log.write_text(log.read_text()[:40])
            needle = "cannot be read"
    with pytest.raises(store.DamagedStore, match=needle):
        store.read_events(paths)


def test_a_full_disk_inside_deltalake_stays_a_full_disk():
    import errno

    with pytest.raises(OSError) as caught:
        with store._delta_errors(store.Paths(Path("/x")), "committing a batch to"):
            raise RuntimeError("Generic LocalFileSystem error: No space left on device (os error 28)")
    assert caught.value.errno == errno.ENOSPC and "No space left on device" in str(caught.value)
