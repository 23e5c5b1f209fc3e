"""Shared by the fault tests: a trained model on a copy of the session's small store (without Prefect),
and a child process killed at a chosen point of its run."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from storage import catalog, layout

# The kill tests fork their children from one clean server process (multiprocessing's forkserver) with
# these modules imported, so a child starts in milliseconds and holds no thread of the test process.
# The preload list is global to the forkserver: every test module that uses it shares this one.
FORKSERVER_PRELOAD = ["flows.ingest", "flows.score", "flows.winback", "storage.tracking", "models.scoring",
                      "ingestion.validate", "tests.conftest"]


def forkserver():
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    return ctx
from tests.conftest import config


def store_copy(small_store, dest: Path, **ignore) -> layout.Paths:
    shutil.copytree(small_store.home, dest, ignore=shutil.ignore_patterns(*ignore.get("without", ())))
    return layout.Paths(dest)


def snapshots(paths: layout.Paths):
    """(frame, info) of 2 training cutoffs + validation, stored under the home."""
    from flows.train import build_snapshots

    _, info = build_snapshots(config(paths, "train", n_train_cutoffs=2), None)
    return catalog.read_snapshots(Path(info["path"])), info


def fit(frame, **model_params):
    from features.customer import FEATURE_NAMES
    from models.train import train_and_evaluate

    return train_and_evaluate(frame[frame["split"] == "train"], frame[frame["split"] == "validation"],
                              FEATURE_NAMES, seed=1, horizon_days=90, btyd=False, bootstrap=None,
                              model_params=model_params or None)


def register(paths: layout.Paths, frame, info, result, tracking_uri: str, experiment: str = "churn") -> dict:
    from flows.train import register as register_model

    cfg = config(paths, "train", n_train_cutoffs=2, seed=1, tracking_uri=tracking_uri, experiment=experiment)
    return register_model(cfg, result, frame, info)


def run_child(ctx, target, home: Path, kill_after: float | None, *args, kill_when=None) -> tuple[float, int]:
    """Run `target(home, ready, *args)` in a child of `ctx`; SIGKILL it `kill_after` s after it touched `ready`,
    or as soon as `kill_when()` is true (a point of progress, e.g. the first ledger record).

    `target` touches `ready` once its imports are done, right before the work, so the clock starts
    when the work does. Returns (seconds from `ready` to the child's end, its exit code): the exit
    code is -SIGKILL when the kill landed, 0 when the child had already finished.
    """
    home.parent.mkdir(parents=True, exist_ok=True)
    ready = home.parent / f"ready-{time.monotonic_ns()}"
    p = ctx.Process(target=target, args=(str(home), str(ready), *args))
    p.start()
    while not ready.exists():
        assert p.is_alive() or ready.exists(), f"child exited early ({p.exitcode})"
        time.sleep(0.01)
    t0 = time.monotonic()
    if kill_when is not None:
        while p.is_alive() and not kill_when():
            time.sleep(0.002)
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join()
    elif kill_after is None:
        p.join(300)
        assert p.exitcode == 0
    else:
        p.join(kill_after)
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join()
    return time.monotonic() - t0, p.exitcode
