"""Faults injected for real: SIGKILL at many points during ingest and scoring, and concurrent ingests."""

import multiprocessing as mp
import os
import signal
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.ingest import ingest_file
from simulator.generate import SimulationConfig, simulate
from storage import atomic, layout, store
from tests.conftest import config
from tests.reliability import helpers

NOW = pd.Timestamp("2025-06-01T00:00Z")
CTX = mp.get_context("fork")  # the children inherit the imported libraries: they start in milliseconds


def _ingest(home: str, files: list[str]) -> None:
    paths = layout.Paths(__import__("pathlib").Path(home))
    for f in files:
        ingest_file(config(paths, "ingest"), __import__("pathlib").Path(f), now=NOW)


@pytest.fixture(scope="module")
def landing_files(tmp_path_factory):
    """Three overlapping CSV/Parquet files of simulated events (the third repeats half of the first two)."""
    d = tmp_path_factory.mktemp("src")
    events, _ = next(iter(simulate(SimulationConfig(customers=600, days=300, seed=1, chunk_customers=600))))
    a, b = events.iloc[: len(events) // 2], events.iloc[len(events) // 2:]
    overlap = pd.concat([a.iloc[::2], b.iloc[::2]])
    files = []
    for name, part in (("a.parquet", a), ("b.parquet", b), ("c.parquet", overlap)):
        part.to_parquet(d / name, index=False)
        files.append(str(d / name))
    return files, set(events["event_id"])


def stored_ids(paths) -> list[str]:
    return store.read_events(paths)["event_id"].tolist()


def _ingest_reporting(home: str, files: list[str], report: str) -> None:
    import traceback

    try:
        _ingest(home, files)
    except BaseException:
        __import__("pathlib").Path(report).write_text(traceback.format_exc())
        raise


def test_two_concurrent_ingests_and_another_delta_writer_store_every_event_once(tmp_path, landing_files):
    """Two `churn ingest` of overlapping files at once, while another Delta writer (as a Spark job with Delta Lake
    would be) appends 20 batches to the same table: every event of all three is stored once, churn's ledger is
    exact, and an event the other writer stored counts as a duplicate when churn is given it."""
    files, all_ids = landing_files
    home = str(tmp_path / "home")
    # separate interpreters, as two `churn ingest` commands would be (no state inherited from this process)
    spawn = mp.get_context("spawn")
    reports = [tmp_path / f"child{i}.txt" for i in range(2)]
    procs = [spawn.Process(target=_ingest_reporting, args=(home, order, str(r)))
             for order, r in zip((files, files[::-1]), reports)]
    procs.append(spawn.Process(target=_append_as_another_writer, args=(home, 20, 50)))
    for p in procs:
        p.start()
    for p, r in zip(procs, [*reports, tmp_path / "none"]):
        p.join(300)
        assert p.exitcode == 0, r.read_text() if r.exists() else f"exit code {p.exitcode}"
    paths = layout.Paths(tmp_path / "home")
    ids = stored_ids(paths)
    others = {f"other-{b}-{i}" for b in range(20) for i in range(50)}
    assert len(ids) == len(set(ids)) == len(all_ids) + len(others)
    assert set(ids) == all_ids | others and _ledger(paths) == len(files)
    history = store.event_table(paths).history()
    assert sum(1 for h in history if "churn.batch_id" in h) >= len(files) and len(history) >= len(files) + 20
    again = tmp_path / "again.parquet"
    store.read_events(paths).query("event_id.str.startswith('other-3-')").drop(columns="ingest_batch").to_parquet(again)
    r = ingest_file(config(paths, "ingest"), again, now=NOW)
    assert (r["stored"], r["duplicates"]) == (0, 50), r


def _append_as_another_writer(home: str, batches: int, rows: int) -> None:
    """Another Delta writer: `batches` appends of `rows` new events each, once the table exists, with no lock of
    churn's."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    table = layout.Paths(__import__("pathlib").Path(home)).events
    deadline = time.monotonic() + 120
    while not DeltaTable.is_deltatable(str(table)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for b in range(batches):
        t = pd.Timestamp("2025-01-15T12:00Z") + pd.to_timedelta(range(rows), unit="min")
        frame = pd.DataFrame({"event_id": [f"other-{b}-{i}" for i in range(rows)],
                              "customer_id": [f"other-c{i % 7}" for i in range(rows)], "event_type": "visit",
                              "event_time": t, "ingest_batch": f"other-{b}", "event_month": "2025-01"})
        full = {f.name: frame[f.name] if f.name in frame else [None] * rows for f in store.table_schema()}
        write_deltalake(str(table), pa.Table.from_pydict(full, schema=store.table_schema()), mode="append",
                        partition_by=[store.PARTITION])


def _ingest_timed(home: str, ready: str, files: list[str]) -> None:
    from ingestion.validate import _gx

    _gx()  # the GX context is built once per process: part of start-up, not of the work that is timed
    __import__("pathlib").Path(ready).touch()
    _ingest(home, files)


INGEST_FRACTIONS = (0.03, 0.25, 0.5, 0.75)  # spread over the run (4 points: the suite has a time budget)
# Children start from a clean server process (no threads of this one: forking a process that ran
# DuckDB or GX can leave a child dead before it starts).
KILL_CTX = helpers.forkserver()


def _ledger(paths) -> int:
    return len(list(paths.ledger.glob("*.json"))) if paths.ledger.exists() else 0


def test_sigkill_during_ingest_then_rerun_stores_every_event_exactly_once(tmp_path, landing_files):
    """Kills at fractions of a measured undisturbed run and right after each file is committed, each
    proven to land while the ingest ran; then a plain re-run stores every event exactly once."""
    files, all_ids = landing_files
    # the shorter of two undisturbed runs: on a busy machine a single one can take 1.5x as long
    duration = min(helpers.run_child(KILL_CTX, _ingest_timed, tmp_path / f"ref{i}" / "home", None, files)[0]
                   for i in range(2))
    # time-based points spread over the run; progress-based points land between two files' commits
    points = [(f"{f:.0%} of {duration:.1f} s", duration * f, None) for f in INGEST_FRACTIONS]
    points += [(f"after file {k}", None, k) for k in range(1, len(files))]
    outcomes = []
    for i, (name, after, committed) in enumerate(points):
        paths = layout.Paths(tmp_path / f"k{i}" / "home")
        when = (lambda p=paths, k=committed: _ledger(p) >= k) if committed else None
        _, exitcode = helpers.run_child(KILL_CTX, _ingest_timed, paths.home, after, files, kill_when=when)
        ledger = _ledger(paths)
        assert exitcode in (0, -signal.SIGKILL) and (exitcode == -signal.SIGKILL or ledger == len(files)), \
            f"kill {name}: exit {exitcode}, {ledger} ledger records"
        # landed mid-run: killed before every file had its ledger record (a kill after the last
        # record, during the volume check or exit, missed the work)
        outcomes.append((name, exitcode == -signal.SIGKILL and ledger < len(files), ledger))
        # what a reader sees right after the crash: whole files only, no id twice
        seen = stored_ids(paths)
        assert len(seen) == len(set(seen)) and set(seen) <= all_ids
        for f in store.event_files(paths):
            pq.read_metadata(f)  # every visible file is complete
        # simply re-running completes the work (recover() runs under the store lock first)
        _ingest(str(paths.home), files)
        ids = stored_ids(paths)
        assert len(ids) == len(set(ids)) == len(all_ids)
        assert not paths.staging.exists() or not any(paths.staging.iterdir())
    timed = [o for o in outcomes[: len(INGEST_FRACTIONS)] if o[1]]
    # every time-based point is well inside the measured run: all must land mid-run (one may miss when
    # the machine is busy: timing noise)
    assert len(timed) >= len(INGEST_FRACTIONS) - 1, f"kills that missed the run: {outcomes}"
    # the progress-based ones land between commits, after some files were recorded and before the last
    for name, landed, ledger in outcomes[len(INGEST_FRACTIONS):]:
        assert landed and 1 <= ledger < len(files), f"kill {name} did not land between commits: {outcomes}"


def _write_loop(path: str, n: int) -> None:
    import numpy as np
    import pyarrow as pa

    for i in range(n):
        atomic.write_parquet_atomic(pa.table({"x": np.full(200_000, i)}), __import__("pathlib").Path(path))


@pytest.mark.parametrize("kill_after", [0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
def test_sigkill_during_an_atomic_write_leaves_the_old_or_the_new_file(tmp_path, kill_after):
    target = tmp_path / "scores.parquet"
    _write_loop(str(target), 1)
    p = CTX.Process(target=_write_loop, args=(str(target), 50))
    p.start()
    time.sleep(kill_after)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    t = pq.read_table(target)  # never partial
    assert t.num_rows == 200_000 and len(set(t["x"].to_pylist())) == 1


def _ingest_killed_after_first_event_file(home: str, ready: str, files: list[str]) -> None:
    """Ingest, SIGKILLing this process right after the first event file of a batch is renamed into the table's
    folder (before the batch's Delta commit)."""
    renamed = []
    real = os.replace

    def replace_then_die(src, dst):
        real(src, dst)
        if str(dst).startswith(str(layout.Paths(__import__("pathlib").Path(home)).events)):
            renamed.append(dst)
            os.kill(os.getpid(), signal.SIGKILL)

    store.os.replace = replace_then_die
    _ingest_timed(home, ready, files)


def test_a_batch_killed_before_its_delta_commit_stays_invisible_to_readers_until_recovered(tmp_path, landing_files):
    """The first month's file of a multi-month batch is in the table's folder, the batch not committed: a reader
    that runs before any writer recovers the store sees none of the batch (not part of it)."""
    files, all_ids = landing_files
    paths = layout.Paths(tmp_path / "home")
    _, exitcode = helpers.run_child(KILL_CTX, _ingest_killed_after_first_event_file, paths.home, 120, files[:1])
    assert exitcode == -signal.SIGKILL
    placed = list(paths.events.glob("event_month=*/*.parquet"))
    journals = list(paths.staging.glob(f"*/{store.JOURNAL}"))
    assert len(placed) == 1 and journals, "the kill must land after the first event file, before the commit"
    assert store.event_files(paths) == [] and stored_ids(paths) == []
    with pytest.raises(store.EmptyStore):
        store.store_time_range(paths)
    _ingest(str(paths.home), files)  # the next ingest rolls the batch forward first
    ids = stored_ids(paths)
    assert len(ids) == len(set(ids)) == len(all_ids)
