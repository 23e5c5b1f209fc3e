"""SIGKILL at many points during `score` and the win-back export, then a plain re-run.

Each killed run is its own process, forked from a clean server process that has the libraries
imported (multiprocessing's forkserver), so it holds no state of the test process. The parent
measures how long an undisturbed run takes and kills later runs at fractions of that time, so the
kill points spread over reading, feature building, prediction, validation and publishing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from storage import layout
from tests.conftest import config
from tests.reliability import helpers

NOW = pd.Timestamp("2025-06-01T00:00Z")
CTX = helpers.forkserver()
FRACTIONS = (0.05, 0.4, 0.75, 0.95)  # spread over the run (4 points: the suite has a time budget)
SCORE_KEYS = ["customer_id", "churn_probability", "risk_rank", "value_at_risk", "reason_1_text", "reasons_method"]


def uri(paths) -> str:
    return f"sqlite:///{paths.mlflow / 'mlflow.db'}"


def _score(home: str, ready: str) -> None:
    from flows.score import score

    Path(ready).touch()
    score(config(home, "score", exact_reasons_top_n=300), None, now=NOW)


def _winback(home: str, ready: str) -> None:
    from flows.winback import winback

    Path(ready).touch()
    winback(config(home, "winback", max_inactive_days=10_000), None)


@pytest.fixture(scope="module")
def trained(small_store, tmp_path_factory):
    """A copy of the small store with a champion in its SQLite registry (no Prefect needed)."""
    paths = helpers.store_copy(small_store, tmp_path_factory.mktemp("killscore") / "home")
    frame, info = helpers.snapshots(paths)
    helpers.register(paths, frame, info, helpers.fit(frame), uri(paths))
    return paths


def scores_files(paths) -> list[Path]:
    return sorted((paths.home / "scores").glob("as_of=*/*.parquet"))


def test_sigkill_during_scoring_leaves_no_partial_file_and_a_rerun_completes(trained, tmp_path):
    ref_home = tmp_path / "ref" / "home"
    shutil.copytree(trained.home, ref_home)
    duration, _ = helpers.run_child(CTX, _score, ref_home, None)
    (ref,) = scores_files(layout.Paths(ref_home))
    expected = pq.read_table(ref).to_pandas()[SCORE_KEYS]
    outcomes = []
    for i, fraction in enumerate(FRACTIONS):
        home = tmp_path / f"k{i}" / "home"
        shutil.copytree(trained.home, home)
        paths = layout.Paths(home)
        helpers.run_child(CTX, _score, home, duration * fraction)
        visible = scores_files(paths)
        # right after the crash: no scores at all, or the complete file (never a part of one)
        assert len(visible) <= 1
        if visible:
            pd.testing.assert_frame_equal(pq.read_table(visible[0]).to_pandas()[SCORE_KEYS], expected)
        outcomes.append(bool(visible))
        _score(str(home), str(home.parent / "ready-rerun"))  # simply re-running completes the work
        (after,) = scores_files(paths)
        pd.testing.assert_frame_equal(pq.read_table(after).to_pandas()[SCORE_KEYS], expected)
    assert not all(outcomes), "every kill came after publishing: the kill points missed the run"


def targets(parquet) -> int:
    """Rows of a win-back Parquet file in the target group (the rows its CSV holds)."""
    return int((pq.read_table(parquet, columns=["group"]).column(0).to_pandas() == "target").sum())


def test_sigkill_during_the_winback_export_never_mixes_two_runs_files(trained, tmp_path):
    from flows.winback import winback

    base = tmp_path / "base" / "home"
    shutil.copytree(trained.home, base)
    helpers.run_child(CTX, _score, base, None)
    # an earlier, different list for the same day (a tighter inactivity limit), and a top-5 list beside it
    winback(config(base, "winback", max_inactive_days=10_000, top_n=5), None)
    earlier = winback(config(base, "winback", max_inactive_days=30), None)["customers"]
    ref_home = tmp_path / "ref" / "home"
    shutil.copytree(base, ref_home)
    duration, _ = helpers.run_child(CTX, _winback, ref_home, None)
    (folder,) = (ref_home / "winback").glob("as_of=*")
    full = targets(folder / "winback.parquet")
    assert full > earlier
    seen = set()
    for i, fraction in enumerate(FRACTIONS):
        home = tmp_path / f"w{i}" / "home"
        shutil.copytree(base, home)
        helpers.run_child(CTX, _winback, home, duration * fraction)
        folders = list((home / "winback").glob("as_of=*"))
        assert len(folders) <= 1
        if folders:  # the old pair or the new pair, both files whole, never one of each
            n_parquet = targets(folders[0] / "winback.parquet")  # the CSV holds the target group
            n_csv = len(pd.read_csv(folders[0] / "winback.csv"))
            assert n_parquet == n_csv and n_parquet in (earlier, full)
            # the other selection's list is untouched, whichever folder is visible
            assert len(pq.read_table(folders[0] / "winback-top5.parquet")) == 5  # target and control
            seen.add(n_parquet)
        else:
            seen.add(-1)
        _winback(str(home), str(home.parent / "ready-rerun"))
        (folder,) = (home / "winback").glob("as_of=*")
        assert targets(folder / "winback.parquet") == len(pd.read_csv(folder / "winback.csv")) == full
        assert len(pd.read_csv(folder / "winback-top5.csv")) == targets(folder / "winback-top5.parquet")
        assert not list((home / "winback").glob(".as_of=*")), "a re-run clears what the crash left behind"
    assert earlier in seen, "every kill came after publishing: the kill points missed the run"
