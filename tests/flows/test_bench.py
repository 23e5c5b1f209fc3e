"""A small smoke run of `churn bench`: every stage runs and lands in the table (no timing is asserted)."""

import json

from churn.bench import bench, parse_size


def test_bench_smoke_writes_every_stage(tmp_path):
    out = tmp_path / "BENCH.md"
    rows = bench([parse_size("20K")], tmp_path / "data", out, out.with_suffix(".json"), exact_top_n=50,
                 increment_events=2_000, isolate=False)
    stages = [r["stage"] for r in rows]
    assert stages == ["generate", "ingest", "features", "features_pandas", "train", "btyd_fit",
                      "score (exact reasons for top 50)", "score (no reasons)", "winback",
                      "end to end (generate + ingest + train + score with reasons + winback)",
                      "command: churn scores (a look-up)",
                      "command: churn winback (one-shot, without a Prefect server)",
                      "ingest 2,000 batch into an empty store", "ingest 2,000 batch into the 20,000-event store"]
    by = {r["stage"]: r for r in rows}
    assert by["ingest"]["stored"] == by["generate"]["events"]
    assert by["features"]["customers"] == by["features_pandas"]["customers"] > 0
    assert by["btyd_fit"]["customers"] == 1000 and by["btyd_fit"]["bg_nbd_fit_s"] > 0
    assert by["ingest 2,000 batch into the 20,000-event store"]["stored"] == 2_000
    commands = [r for r in rows if r["stage"].startswith("command: ")]
    assert all(r["wall_s"] > 0 and "failed" not in r["note"] for r in commands), commands
    assert all(r["wall_s"] > 0 and r["peak_rss_mb"] > 50 for r in rows if r not in commands)
    e2e = by["end to end (generate + ingest + train + score with reasons + winback)"]
    parts = ["generate", "ingest", "train", "score (exact reasons for top 50)", "winback"]
    assert e2e["wall_s"] == round(sum(by[s]["wall_s"] for s in parts), 3) and "note" not in e2e
    # the isolated mode (what `churn bench` uses) runs a stage in a child process
    from churn.bench import _measure

    child = _measure("features", {"home": str(tmp_path / "data" / "events=20,000")})
    assert child["customers"] == by["features"]["customers"] and child["process_s"] >= child["wall_s"]
    assert "faster" in out.read_text() and json.loads(out.with_suffix(".json").read_text()) == rows


def test_a_failing_stage_loses_nothing_measured_before_it(tmp_path, monkeypatch):
    """Issue #14: results are written as each stage finishes, so a failure late in a long run keeps the rest."""
    import pytest

    from churn import bench as b

    def broken(p):
        raise RuntimeError("disk gone")

    monkeypatch.setitem(b.STAGES, "features_pandas", broken)
    out = tmp_path / "BENCH.md"
    with pytest.raises(RuntimeError, match="disk gone"):
        bench([parse_size("5K")], tmp_path / "data", out, out.with_suffix(".json"), exact_top_n=10,
              increment_events=500, isolate=False, commands=False)
    kept = json.loads(out.with_suffix(".json").read_text())
    assert [r["stage"] for r in kept] == ["generate", "ingest", "features"] and "| features |" in out.read_text()
    # run again: the cached store is reused, its generate/ingest rows keep the figures measured when it was built
    with pytest.raises(RuntimeError, match="disk gone"):
        bench([parse_size("5K")], tmp_path / "data", out, out.with_suffix(".json"), exact_top_n=10,
              increment_events=500, isolate=False, commands=False)
    again = json.loads(out.with_suffix(".json").read_text())
    assert again[0] == {**kept[0], "note": "store cached; measured when it was built"}
    assert again[1] == {**kept[1], "note": "store cached; measured when it was built"}
    assert again[2]["events"] == kept[2]["events"]


def test_rewriting_the_table_keeps_a_section_measured_by_hand(tmp_path):
    from churn.bench import KEPT_SECTION, _write

    out_md, out_json = tmp_path / "BENCHMARKS.md", tmp_path / "BENCHMARKS.json"
    hand = f"{KEPT_SECTION}\n## Spark\n\nmeasured by hand\n"
    out_md.write_text("# Benchmarks\n\nold table\n\n" + hand)
    row = {"size": "1M", "stage": "features", "wall_s": 1.0, "events": 1_000_000}
    for _ in range(2):  # the bench rewrites the file after every stage
        _write([row], out_md, out_json)
    text = out_md.read_text()
    assert "old table" not in text and "| 1M | features | 1.0 |" in text
    assert text.endswith("\n\n" + hand) and text.count(KEPT_SECTION) == 1
