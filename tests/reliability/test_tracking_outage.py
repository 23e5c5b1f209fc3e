"""A real MLflow server on 127.0.0.1 that goes down during training and scoring.

The server is stopped for real (SIGTERM to its process group) at chosen points: before scoring,
while a training run is logging, and between registering a new model version and moving the
`champion` alias to it. Calls are retried with backoff (a server back within the backoff window
is simply used), then fail with one clear error, and the champion never moves to a model whose
run did not complete.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from storage import layout, tracking
from tests.conftest import config
from tests.reliability import helpers

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` over a SQLite store in `home`; start/stop keep the same port and data."""

    def __init__(self, home: Path):
        self.home, self.port, self.proc = home, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        (self.home / "artifacts").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.proc = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{self.home / 'mlflow.db'}",
             "--artifacts-destination", str(self.home / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=open(self.home / "server.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            assert self.proc.poll() is None, (self.home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        assert not self.healthy()

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.uri}/api/2.0/mlflow/{path}", timeout=10) as r:
            return json.loads(r.read())

    def alias(self, name: str, alias: str) -> str | None:
        try:
            return self.get(f"registered-models/alias?name={name}&alias={alias}")["model_version"]["version"]
        except urllib.error.HTTPError:
            return None

    def versions(self, name: str) -> list[str]:
        got = self.get(f"model-versions/search?filter=name%3D%27{name}%27")
        return sorted(v["version"] for v in got.get("model_versions", []))


@pytest.fixture
def server(tmp_path, monkeypatch):
    # fewer, shorter retries than the default (5, backoff 1-16 s) keep the test quick; same mechanism
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    s = Server(tmp_path / "mlflow-server")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def snapshots(small_store, tmp_path_factory):
    paths = helpers.store_copy(small_store, tmp_path_factory.mktemp("outage") / "home")
    frame, info = helpers.snapshots(paths)
    weak, strong = helpers.fit(frame, n_estimators=2, max_depth=1), helpers.fit(frame)
    assert strong.metrics["roc_auc"] > weak.metrics["roc_auc"]
    return paths, frame, info, weak, strong


def log(paths, frame, info, result, uri):
    return helpers.register(paths, frame, info, result, uri, experiment="outage")


def stop_then_call(server: Server, real):
    def wrapper(*args, **kwargs):
        server.stop()
        return real(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("fault_at", ["while the run logs", "after the new version is registered"])
def test_server_down_during_training_is_a_clear_error_and_the_champion_does_not_move(
        server, snapshots, monkeypatch, fault_at):
    import mlflow
    from mlflow import MlflowClient

    paths, frame, info, weak, strong = snapshots
    first = log(paths, frame, info, weak, server.uri)
    assert first["alias"] == "champion" and server.alias("churn", "champion") == first["model_version"]
    if fault_at == "while the run logs":
        monkeypatch.setattr(mlflow, "log_metrics", stop_then_call(server, mlflow.log_metrics))
    else:
        monkeypatch.setattr(MlflowClient, "set_registered_model_alias",
                            stop_then_call(server, MlflowClient.set_registered_model_alias))
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingUnavailable) as err:
        log(paths, frame, info, strong, server.uri)
    assert time.monotonic() - t0 >= 1.0, "no backoff: the call failed at once"
    message = str(err.value)
    assert server.uri in message and "after 2 retries" in message and "champion is unchanged" in message
    monkeypatch.undo()
    server.start()
    # the better model would have been promoted; the champion is still the first, complete one
    assert server.alias("churn", "champion") == first["model_version"]
    versions = server.versions("churn")
    if fault_at == "after the new version is registered":
        assert versions == [first["model_version"], str(int(first["model_version"]) + 1)]  # registered, not promoted
    else:
        assert versions == [first["model_version"]]
    # a re-run once the server is back completes the work
    again = log(paths, frame, info, strong, server.uri)
    assert again["alias"] == "champion" and server.alias("churn", "champion") == again["model_version"]


def test_scoring_retries_through_a_server_restart_and_fails_clearly_when_it_stays_down(server, snapshots, tmp_path,
                                                                                         monkeypatch):
    from flows.score import score

    paths, frame, info, weak, strong = snapshots
    log(paths, frame, info, strong, server.uri)
    home = tmp_path / "home"
    shutil.copytree(paths.home, home, ignore=shutil.ignore_patterns("scores"))
    p = layout.Paths(home)
    now = __import__("pandas").Timestamp("2025-06-01T00:00Z")

    def run():
        return score(config(p, "score", exact_reasons_top_n=100, tracking_uri=server.uri, experiment="outage"),
                     None, now=now)

    # down, and still down after every retry: one clear error, nothing published
    server.stop()
    with pytest.raises(tracking.TrackingUnavailable, match=r"did not answer .* nothing was promoted or published"):
        run()
    assert not (home / "scores").exists()
    # down, and back within the backoff window: the retries carry the run through
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
    restart = threading.Timer(1.0, server.start)
    restart.start()
    try:
        r = run()
    finally:
        restart.join()
    assert Path(r["path"]).exists() and r["customers"] > 0 and r["run_id"]


def test_an_unreachable_server_is_a_transient_failure_for_prefect_retries():
    from prefect.states import Failed

    err = tracking.TrackingUnavailable("the MLflow tracking server at http://127.0.0.1:1 did not answer")
    assert tracking.retry_transient(None, None, Failed(data=err)) is True
    assert tracking.retry_transient(None, None, Failed(data=ValueError("bad data"))) is False
