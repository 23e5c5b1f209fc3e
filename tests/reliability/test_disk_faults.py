"""A full disk and a read-only data folder, for real: the data folder is a mount point.

Each scenario runs in a child process inside its own user and mount namespace (`unshare -rm`,
no privileges needed), where the data folder is a small tmpfs (disk full) or a read-only bind
mount. The child runs the real `churn` command line (`churn.cli.main`) and reports what it saw.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storage import layout
from tests.reliability import helpers

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = f"""
import contextlib, io as _io, json, os, subprocess, sys
sys.path.insert(0, {str(ROOT)!r})
import pandas as pd, pyarrow.parquet as pq
from storage import layout, store
from churn.cli import main

def churn(*args):
    err = _io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
        code = main(["--home", HOME, *args])
    return code, err.getvalue()

def visible_state():
    paths = layout.Paths(__import__("pathlib").Path(HOME))
    for f in store.event_files(paths):
        pq.read_metadata(f)  # every published file is whole
    ids = store.read_events(paths)["event_id"].tolist()
    return {{"ids": sorted(ids), "unique": len(ids) == len(set(ids)),
             "ledger": sorted(p.name for p in paths.ledger.glob("*.json")) if paths.ledger.exists() else [],
             "staging": sorted(p.name for p in paths.staging.iterdir()) if paths.staging.exists() else []}}
"""


def run_in_namespace(tmp_path: Path, mount: str, script: str, home: Path) -> dict:
    """Run `script` with the data folder `home` mounted as described, in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.fail("util-linux `unshare` is needed for the disk-fault tests (it is part of every Linux base image)")
    # a user + mount namespace needs no privileges; where user namespaces are off, root can use a mount one
    works = [f for f in ("-rm", "-m") if subprocess.run(["unshare", f, "true"], capture_output=True).returncode == 0]
    flags = works[0] if works else None
    if flags is None:
        pytest.fail("cannot create a private mount namespace (`unshare -rm` and `unshare -m` both failed)")
    code = tmp_path / "child.py"
    code.write_text(f"HOME = {str(home)!r}\n" + PRELUDE + textwrap.dedent(script))
    env_prefect = tmp_path / "prefect-home"  # Prefect's own state stays off the faulty disk
    env_prefect.mkdir(exist_ok=True)
    shell = f"{mount} && PREFECT_HOME={env_prefect} exec {sys.executable} {code}"
    r = subprocess.run(["unshare", flags, "sh", "-c", shell], capture_output=True, text=True, timeout=600,
                       cwd=str(ROOT))
    assert r.returncode == 0, f"child failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A small file that fits the small disk and a large one that does not (random ids do not compress)."""
    import numpy as np
    import pandas as pd

    d = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)

    def frame(n: int, prefix: str) -> pd.DataFrame:
        return pd.DataFrame({
            "event_id": [f"{prefix}{x:032x}" for x in rng.integers(0, 2**62, n)],
            "customer_id": [f"c{x:016x}" for x in rng.integers(0, 2**62, n)],
            "event_type": "purchase",
            "event_time": pd.Timestamp("2024-03-01T00:00Z") + pd.to_timedelta(rng.integers(0, 86400 * 60, n), "s"),
            "amount": rng.uniform(1, 100, n).round(2),
        })

    small, large = frame(2_000, "s"), frame(200_000, "l")
    small.to_parquet(d / "small.parquet", index=False)
    large.to_parquet(d / "large.parquet", index=False)
    return d / "small.parquet", d / "large.parquet", len(small), len(large)


def test_disk_full_during_ingest_is_a_clear_error_and_a_rerun_with_space_stores_everything_once(tmp_path, sources):
    small, large, n_small, n_large = sources
    home = tmp_path / "home"
    home.mkdir()
    out = run_in_namespace(tmp_path, f"mount -t tmpfs -o size=3m tmpfs {home}", f"""
        report = {{}}
        report["small"] = churn("ingest", {str(small)!r})
        report["before"] = visible_state()
        report["full"] = churn("ingest", {str(large)!r})
        report["after_full"] = visible_state()
        subprocess.run(["mount", "-o", "remount,size=200m", HOME], check=True)
        report["rerun"] = churn("ingest", {str(large)!r})
        report["final"] = visible_state()
        print(json.dumps(report))
    """, home)
    assert out["small"][0] == 0
    code, err = out["full"]
    assert code == 4 and "No space left on device" in err and "re-run once there is space" in err
    assert "Traceback" not in err
    # nothing of the failed batch is visible, nothing of the earlier one is lost, no staging left taking space
    assert out["after_full"]["ids"] == out["before"]["ids"] and len(out["before"]["ids"]) == n_small
    assert out["after_full"]["ledger"] == out["before"]["ledger"] and out["after_full"]["staging"] == []
    assert out["rerun"][0] == 0
    final = out["final"]
    assert final["unique"] and len(final["ids"]) == n_small + n_large and len(final["ledger"]) == 2


def test_a_read_only_data_folder_is_a_clear_error_and_changes_nothing(tmp_path, sources, small_store):
    small, _, _, _ = sources
    home = tmp_path / "home"
    shutil.copytree(small_store.home, home)
    # a champion, so that `churn score` gets as far as writing (without one it stops earlier, at "no champion")
    paths = layout.Paths(home)
    frame, info = helpers.snapshots(paths)
    helpers.register(paths, frame, info, helpers.fit(frame), f"sqlite:///{paths.mlflow / 'mlflow.db'}")
    before = sorted((str(p.relative_to(home)), p.stat().st_size) for p in home.rglob("*") if p.is_file())
    out = run_in_namespace(tmp_path, f"mount --bind {home} {home} && mount -o remount,bind,ro {home}", f"""
        report = {{"ingest": churn("ingest", {str(small)!r}), "train": churn("train"), "score": churn("score")}}
        print(json.dumps(report))
    """, home)
    for command, (code, err) in out.items():
        assert code == 4, (command, err)
        assert "Read-only file system" in err or "not writable" in err, (command, err)
        assert "Traceback" not in err, (command, err)
    after = sorted((str(p.relative_to(home)), p.stat().st_size) for p in home.rglob("*") if p.is_file())
    assert after == before
