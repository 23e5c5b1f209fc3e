"""Files still being written are never ingested: a real writer appends while ingest runs."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from flows.ingest import ingest_file
from storage import sources, store
from tests.conftest import NOW, config

HEADER = "event_id,customer_id,event_type,event_time,amount\n"
SETTLE = 0.6


def row(i: int) -> str:
    return f"e{i},customer-{i:06d}-with-a-long-id,purchase,2024-03-01T10:{i % 60:02d}:00Z,{i}.25\n"


class SlowWriter(threading.Thread):
    """Writes a CSV a few bytes at a time (lines cut in the middle), flushing as it goes."""

    def __init__(self, path, rows: int, seconds: float):
        super().__init__(daemon=True)
        self.path, self.rows, self.seconds = path, rows, seconds

    def run(self) -> None:
        text = HEADER + "".join(row(i) for i in range(self.rows))
        chunk = max(1, len(text) // int(self.seconds / 0.02))
        with open(self.path, "w") as f:
            for at in range(0, len(text), chunk):
                f.write(text[at:at + chunk])
                f.flush()
                time.sleep(0.02)


def test_a_file_being_written_is_left_waiting_and_a_later_sweep_stores_every_row_once(paths):
    paths.landing.mkdir(parents=True)
    target = paths.landing / "orders.csv"
    cfg = config(paths, "ingest", settle_seconds=SETTLE)
    writer = SlowWriter(target, rows=300, seconds=2.0)
    writer.start()
    seen = []
    while writer.is_alive():  # the scheduled sweep running again and again while the writer works
        if target.exists():
            r = ingest_file(cfg, target, now=NOW)
            seen.append(r["status"])
            assert r["status"] == "waiting" and r["rows_in"] == r["stored"] == 0, r
            assert "still being written" in r["note"] or "changed while it was read" in r["note"]
        time.sleep(0.05)
    writer.join()
    assert len(seen) >= 5 and not store.event_files(paths) and not (paths.quarantine.exists()
                                                                    and any(paths.quarantine.iterdir()))
    time.sleep(SETTLE + 0.1)
    r = ingest_file(cfg, target, now=NOW)
    assert (r["status"], r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == ("ingested", 300, 300, 0, 0)
    events = store.read_events(paths).set_index("event_id")
    assert len(events) == 300 and events.loc["e299", "customer_id"] == "customer-000299-with-a-long-id"
    assert events.loc["e299", "amount"] == 299.25
    assert ingest_file(cfg, target, now=NOW)["status"] == "skipped"


def test_a_named_file_is_waited_for_up_to_the_settle_time(paths):
    """`churn ingest PATH` (wait=True): a writer that finishes within the settle time is waited for."""
    paths.landing.mkdir(parents=True)
    target = paths.landing / "orders.csv"
    writer = SlowWriter(target, rows=100, seconds=0.5)
    writer.start()
    time.sleep(0.1)
    r = ingest_file(config(paths, "ingest", settle_seconds=1.0), target, now=NOW, wait=True)
    writer.join()
    assert (r["status"], r["stored"]) == ("ingested", 100)


def test_churn_ingest_of_a_file_still_being_written_says_so_and_exits_non_zero(paths, prefect_harness, monkeypatch,
                                                                                  capsys):
    from churn.cli import main

    paths.landing.mkdir(parents=True)
    target = paths.landing / "orders.csv"
    writer = SlowWriter(target, rows=400, seconds=4.0)
    writer.start()
    time.sleep(0.1)
    monkeypatch.setenv("CHURN_LANDING_SETTLE_SECONDS", "1.0")
    assert main(["--home", str(paths.home), "ingest", str(target)]) == 1
    err = capsys.readouterr().err
    assert "orders.csv is still being written" in err and "Traceback" not in err
    assert not store.event_files(paths) and target.exists()
    writer.join()


def test_the_producer_protocol_a_done_marker_or_a_renamed_hidden_file_is_taken_at_once(paths):
    paths.landing.mkdir(parents=True)
    cfg = config(paths, "ingest", settle_seconds=3600.0)  # only the protocol can make these complete
    hidden = paths.landing / ".orders.csv.tmp"
    hidden.write_text(HEADER + row(1))
    part = paths.landing / "more.csv.part"
    part.write_text(HEADER + row(2))
    assert sources.landing_files(paths) == []  # temp names are never picked up
    hidden.rename(paths.landing / "orders.csv")
    part.rename(paths.landing / "more.csv")
    (paths.landing / "more.csv.done").touch()
    results = {f.name: ingest_file(cfg, f, now=NOW) for f in sources.landing_files(paths)}
    assert results["more.csv"]["stored"] == 1
    assert results["orders.csv"]["status"] == "waiting"  # renamed in but unmarked: the settle time applies
    assert set(store.read_events(paths)["event_id"]) == {"e2"}


def test_what_is_hashed_is_what_is_parsed(paths, monkeypatch):
    """A file that changes while it is read is left for later, never stored under another content's hash."""
    paths.landing.mkdir(parents=True)
    target = paths.landing / "orders.csv"
    target.write_text(HEADER + row(1))
    real = type(target).read_bytes

    def read_then_append(self):
        data = real(self)
        if self == target:
            with open(self, "a") as f:
                f.write(row(2))
        return data

    monkeypatch.setattr(type(target), "read_bytes", read_then_append)
    landed = sources.read_complete(target, settle_seconds=0.0)
    assert landed.data is None and landed.waiting == "changed while it was read"
    monkeypatch.undo()
    r = ingest_file(config(paths, "ingest"), target, now=NOW)
    assert r["stored"] == 2 and r["sha256"] == sources.file_sha256(target)
    assert pd.Index(store.read_events(paths)["event_id"]).equals(pd.Index(["e1", "e2"]))


def test_generated_landing_files_follow_the_producer_protocol_and_are_taken_at_once(paths):
    from churn.generate import generate
    from simulator.generate import SimulationConfig

    generate(paths, SimulationConfig(customers=50, days=60, seed=3, chunk_customers=50))
    cfg = config(paths, "ingest", settle_seconds=3600.0)
    results = [ingest_file(cfg, f, now=NOW) for f in sources.landing_files(paths)]
    assert results and all(r["status"] == "ingested" and r["stored"] > 0 for r in results)


class PausingWriter(threading.Thread):
    """Writes a file in two parts and pauses between them far longer than the settle time."""

    def __init__(self, path, first: bytes, rest: bytes, pause: float):
        super().__init__(daemon=True)
        self.path, self.first, self.rest, self.pause = path, first, rest, pause
        self.paused = threading.Event()

    def run(self) -> None:
        with open(self.path, "wb") as f:
            f.write(self.first)
            f.flush()
            self.paused.set()
            time.sleep(self.pause)
            f.write(self.rest)


def _cut(fmt: str) -> tuple[str, bytes, int]:
    """A complete file of each kind and where a paused writer could stop inside its end."""
    import gzip
    import io

    text = HEADER + "".join(row(i) for i in range(40))
    if fmt == "csv":
        data = text.encode()
        return "orders.csv", data, data.rindex(b".25")  # "39.25" would be stored as 39
    if fmt == "jsonl":
        frame = pd.read_csv(io.StringIO(text), dtype=str)
        data = frame.to_json(orient="records", lines=True).encode()
        return "orders.jsonl", data, len(data) - 3
    if fmt == "csv.gz":
        data = gzip.compress(text.encode())
        return "orders.csv.gz", data, len(data) - 6
    buf = io.BytesIO()
    pd.read_csv(io.StringIO(text), dtype=str).to_parquet(buf)
    data = buf.getvalue()
    return "orders.parquet", data, len(data) - 10


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "csv.gz", "parquet"])
def test_a_writer_paused_inside_the_last_record_is_waited_for_and_nothing_is_stored_cut_short(paths, fmt):
    """The writer holds still longer than the settle time with the file's end cut short: the file waits."""
    paths.landing.mkdir(parents=True)
    name, data, cut = _cut(fmt)
    target = paths.landing / name
    cfg = config(paths, "ingest", settle_seconds=0.2, incomplete_seconds=3600.0)
    writer = PausingWriter(target, data[:cut], data[cut:], pause=1.5)
    writer.start()
    writer.paused.wait()
    time.sleep(0.4)  # settled by size and time
    r = ingest_file(cfg, target, now=NOW)
    assert r["status"] == "waiting" and r["rows_in"] == 0 and "still being written" in r["note"], r
    assert ".done marker" in r["note"] and not store.event_files(paths) and target.exists()
    assert not paths.rejected.exists() or not any(paths.rejected.iterdir())
    writer.join()
    time.sleep(0.3)
    r = ingest_file(cfg, target, now=NOW)
    assert (r["status"], r["rows_in"], r["stored"]) == ("ingested", 40, 40), r
    assert store.read_events(paths).set_index("event_id").loc["e39", "amount"] == 39.25


def test_a_file_without_a_final_line_end_is_taken_with_a_done_marker_or_after_the_longer_wait(paths):
    paths.landing.mkdir(parents=True)
    a, b = paths.landing / "a.csv", paths.landing / "b.csv"
    a.write_text(HEADER + row(1).rstrip("\n"))
    (paths.landing / "a.csv.done").touch()
    cfg = config(paths, "ingest", settle_seconds=0.2, incomplete_seconds=4.0)
    assert ingest_file(cfg, a, now=NOW)["stored"] == 1
    b.write_text(HEADER + row(2).rstrip("\n"))
    time.sleep(0.3)  # settled, but cut short: waits for the longer time (a busy machine has 3.7 s of margin)
    r = ingest_file(cfg, b, now=NOW)
    assert r["status"] == "waiting" and "last line has no line end" in r["note"], r
    time.sleep(4.0)
    assert ingest_file(cfg, b, now=NOW)["stored"] == 1


def test_a_file_with_a_modification_time_in_the_future_is_taken_once_it_held_still(paths):
    """A copied file may carry an mtime in the future (a clock ahead elsewhere); it must not wait for ever."""
    import os

    paths.landing.mkdir(parents=True)
    f = paths.landing / "copied.csv"
    f.write_text(HEADER + row(1))
    future = time.time() + 30 * 86_400
    os.utime(f, (future, future))
    cfg = config(paths, "ingest", settle_seconds=0.3)
    assert ingest_file(cfg, f, now=NOW)["status"] == "waiting"
    time.sleep(0.4)
    assert ingest_file(cfg, f, now=NOW)["stored"] == 1


def test_a_stale_done_marker_never_lets_a_file_rewritten_in_place_in_and_a_marker_is_used_once(paths):
    """A daily `daily.csv` + `daily.csv.done` rewritten in place: the marker of yesterday's delivery (older than
    the file's last change) does not vouch for today's file, and a marker is consumed once its file is ingested."""
    paths.landing.mkdir(parents=True)
    target, marker = paths.landing / "daily.csv", paths.landing / "daily.csv.done"
    cfg = config(paths, "ingest", settle_seconds=60.0)  # only a valid marker can make the file complete
    target.write_text(HEADER + "d1,c1,purchase,2024-03-01T10:00:00Z,5\n")
    marker.touch()
    assert ingest_file(cfg, target, now=NOW)["status"] == "ingested"
    assert not marker.exists()  # used: it said "complete" about that content only

    marker.touch()  # a marker left from an earlier delivery (e.g. a producer that never removes it) ...
    time.sleep(0.05)
    with open(target, "w") as f:  # ... and the next day's file written in place, paused mid-amount
        f.write(HEADER + "d2,c2,purchase,2024-03-02T10:00:00Z,5\nd3,c3,purchase,2024-03-02T11:00:00Z,99")
    r = ingest_file(cfg, target, now=NOW)
    assert r["status"] == "waiting" and r["stored"] == 0, r
    with open(target, "a") as f:
        f.write(".99\n")
    marker.touch()  # the producer marks the finished file
    r = ingest_file(cfg, target, now=NOW)
    assert (r["status"], r["stored"], r["duplicates"]) == ("ingested", 2, 0)
    assert store.read_events(paths).set_index("event_id").loc["d3", "amount"] == 99.99
    assert not marker.exists()


def test_a_rejected_file_whose_writer_is_still_at_work_never_writes_into_nothing(paths):
    """A file taken and rejected while its writer still holds it open: what the writer adds afterwards lands in
    a file someone can find (the one in rejected/), never in an inode that no folder names any more."""
    paths.landing.mkdir(parents=True)
    target = paths.landing / "daily.parquet"
    cfg = config(paths, "ingest", settle_seconds=60.0)
    with open(target, "wb") as f:
        f.write(b"PAR1 first row group ...")
        f.flush()
        (paths.landing / "daily.parquet.done").touch()  # a marker the producer wrote too early
        r = ingest_file(cfg, target, now=NOW)
        assert r["status"] == "rejected", r
        f.write(b"... the rest of the delivery PAR1")
    kept = [p for p in [target, *paths.rejected.iterdir()] if p.exists() and not p.name.endswith(".json")]
    assert any(p.read_bytes().endswith(b"the rest of the delivery PAR1") for p in kept), kept


def test_the_completeness_check_never_raises_for_a_name_and_a_gzip_file_is_decompressed_once(paths, monkeypatch):
    """`cut_short` runs outside ingest's per-file error handling: a name ingest cannot read is the reader's
    to reject, never an exception here. A gzip file it had to decompress is not decompressed again."""
    import gzip

    assert sources.cut_short(paths.home / "orders.txt", b"a,b\n1,2")[0] == "its last line has no line end"
    # a zero-byte file and a file of only a byte-order mark are both empty, not writers paused mid-line
    assert sources.cut_short(paths.home / "a.csv", b"")[0] is None
    assert sources.cut_short(paths.home / "a.csv", b"\xef\xbb\xbf")[0] is None
    assert [sources.is_source_name(n) for n in ("a.csv", "A.CSV.GZ", "b.ndjson", "c.txt", "d.csv.bz2")] == [
        True, True, True, False, False]
    paths.landing.mkdir(parents=True)
    target = paths.landing / "orders.csv.gz"
    target.write_bytes(gzip.compress((HEADER + row(1)).encode()))
    calls = []
    real = gzip.decompress
    monkeypatch.setattr(gzip, "decompress", lambda data: calls.append(len(data)) or real(data))
    cfg = config(paths, "ingest", settle_seconds=0.01, incomplete_seconds=3600.0)  # settled: its end is checked
    time.sleep(0.05)
    r = ingest_file(cfg, target, now=NOW)
    assert (r["status"], r["stored"], len(calls)) == ("ingested", 1, 1), (r, calls)


@pytest.mark.parametrize("name, content", [
    ("utf16.csv", (HEADER + row(1)).encode("utf-16")),  # complete; it ends in "\n\0"
    ("utf16-no-bom.csv", (HEADER + row(1)).encode("utf-16-le")),
    ("parquet-named.csv", "parquet"),
], ids=["utf16", "utf16_no_bom", "parquet_named_csv"])
def test_a_complete_file_that_is_not_utf8_text_is_rejected_not_left_waiting_as_cut_short(paths, name, content):
    paths.landing.mkdir(parents=True)
    target = paths.landing / name
    if content == "parquet":
        pd.DataFrame({"event_id": ["e1"], "amount": [1.5]}).to_parquet(target)
    else:
        target.write_bytes(content)
    time.sleep(0.05)
    r = ingest_file(config(paths, "ingest", settle_seconds=0.01, incomplete_seconds=3600.0), target, now=NOW)
    assert r["status"] != "waiting" and r["stored"] == 0, r
    # UTF-16 without a BOM decodes as UTF-8 text full of NULs: every row quarantined, each with its reason
    assert r["status"] == "rejected" and "not UTF-8" in r["error"] or r["quarantined"] == r["rows_in"] > 0, r


def test_a_sweep_that_finds_a_file_still_arriving_is_not_a_failure(paths, prefect_harness, monkeypatch, capsys):
    """`churn ingest` without paths (a cron sweep) reports a file still being written as waiting and exits 0;
    only a file the user named and that did not finish is exit 1."""
    from churn.cli import main

    paths.landing.mkdir(parents=True)
    (paths.landing / "orders.csv").write_text(HEADER + row(1))
    monkeypatch.setenv("CHURN_LANDING_SETTLE_SECONDS", "600")
    assert main(["--home", str(paths.home), "ingest"]) == 0
    out, err = capsys.readouterr()
    assert "waiting" in out and "still being written" in out and "error:" not in err
