"""The store's commit protocol: a crash at any step leaves no partial batch visible."""

import json

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


def test_recover_discards_a_batch_that_never_committed(paths):
    stage = paths.staging / "b2"
    atomic.write_parquet_atomic(_events(1), stage / "events/event_month=2025-06/b2.parquet")
    assert store.recover(paths) == ["discarded b2"]
    assert store.event_files(paths) == [] and not stage.exists()


def test_recover_finishes_a_batch_that_crashed_half_way_through_its_renames(paths):
    store.commit_batch(paths, "b0", _events(1), QUARANTINE_SCHEMA.empty_table(), {}, None)
    stage = paths.staging / "b3"
    moves = []
    for i, d in enumerate(["2025-06", "2025-07"]):
        rel = f"events/event_month={d}/b3.parquet"
        atomic.write_parquet_atomic(_events(1), stage / rel)
        moves.append([rel, rel])
    atomic.write_bytes_atomic(stage / "COMMIT", json.dumps({"batch_id": "b3", "moves": moves}).encode())
    # the crash happened after the first rename
    (paths.home / moves[0][1]).parent.mkdir(parents=True, exist_ok=True)
    (stage / moves[0][0]).rename(paths.home / moves[0][1])
    # until a writer recovers the store, readers do not see the half-renamed batch at all
    assert [p.name for p in store.event_files(paths)] == ["b0.parquet"]
    assert store.store_time_range(paths)[2] == 1 and list(store.read_events(paths)["event_id"]) == ["e0"]
    assert store.recover(paths) == ["rolled forward b3"]
    assert sorted(p.name for p in store.event_files(paths)) == ["b0.parquet", "b3.parquet", "b3.parquet"]


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
    """A reader listing and counting the store while batches of three months each are committed (renamed one
    file at a time) must only ever see whole batches: every count a multiple of the batch size."""
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
