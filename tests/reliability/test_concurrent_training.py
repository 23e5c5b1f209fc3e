"""Two `churn train` runs at once: the alias moves only if the model still beats the champion at that moment."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import snapshots, store_copy

WEAK = {"n_estimators": 1, "max_depth": 1}
STRONG = {}


def _train_reporting(home: str, info: dict, model_params: dict, tracking_uri: str, out: str, env: dict) -> None:
    """One training process, as `churn train` would run it (its own interpreter): fit, judge, register."""
    import traceback

    os.environ.update(env)
    try:
        from storage import catalog, layout
        from tests.reliability.helpers import fit, register

        frame = catalog.read_snapshots(Path(info["path"]))
        r = register(layout.Paths(Path(home)), frame, info, fit(frame, **model_params), tracking_uri)
        Path(out).write_text(json.dumps({**{k: r.get(k) for k in ("run_id", "model_version", "alias", "promotion_reason",
                                                               "promotion_recheck")},
                                         "roc_auc": r["metrics"]["roc_auc"]}))
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        raise


def _wait(path: Path, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.is_alive(), f"the paused process ended first (exit code {proc.exitcode})"
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.2)


def _result(out: Path, proc) -> dict:
    proc.join(300)
    err = Path(str(out) + ".error")
    assert proc.exitcode == 0, err.read_text() if err.exists() else f"exit code {proc.exitcode}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("paused, other", [(WEAK, STRONG), (STRONG, WEAK)], ids=["weak-paused", "strong-paused"])
def test_a_run_that_decided_before_another_promoted_is_judged_again_before_its_alias_moves(small_store, tmp_path,
                                                                                          paused, other):
    """Run A decides 'no champion yet: promote', then waits between its decision and its alias move while
    run B registers and promotes; A must score B's model on its snapshot and decide again."""
    paths = store_copy(small_store, tmp_path / "home")
    _, info = snapshots(paths)
    uri = f"sqlite:///{paths.mlflow / 'mlflow.db'}"
    gate = tmp_path / "gate"
    spawn = mp.get_context("spawn")  # separate interpreters, as two `churn train` commands are
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    a = spawn.Process(target=_train_reporting, args=(str(paths.home), info, paused, uri, str(out_a),
                                                     {"CHURN_TEST_PAUSE_BEFORE_PROMOTION": str(gate)}))
    a.start()
    try:
        _wait(Path(str(gate) + ".waiting"), a)  # A has decided and registered its version; the alias has not moved
        b = spawn.Process(target=_train_reporting, args=(str(paths.home), info, other, uri, str(out_b), {}))
        b.start()
        rb = _result(out_b, b)
    finally:
        gate.write_text("go")
    ra = _result(out_a, a)
    assert rb["alias"] == "champion" and rb["promotion_recheck"] is None

    from mlflow import MlflowClient

    from storage.tracking import setup

    setup(uri, "churn", paths.mlflow / "artifacts")
    best = max((ra, rb), key=lambda r: r["roc_auc"])
    assert ra["roc_auc"] != rb["roc_auc"]
    champion = MlflowClient().get_model_version_by_alias("churn", "champion")
    assert str(champion.version) == best["model_version"]  # the better model is champion at the end, whoever ran last
    assert ra["alias"] == ("champion" if best is ra else "challenger")
    assert ra["promotion_recheck"].startswith(f"the champion changed from vNone to v{rb['model_version']}")
    tags = MlflowClient().get_run(ra["run_id"]).data.tags
    assert tags["alias"] == ra["alias"] and tags["promotion_recheck"] == ra["promotion_recheck"]
    assert tags["promotion_reason"] == ra["promotion_reason"] and "on the same snapshot" in ra["promotion_reason"]
