import os
from pathlib import Path

import pandas as pd
import pytest

from churn.cli import QUIET_ENV

for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = pd.Timestamp("2025-06-01T12:00:00Z")


@pytest.fixture
def paths(tmp_path):
    from storage import layout

    return layout.Paths(tmp_path / "home")


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def small_store(tmp_path_factory):
    """A home folder with a generated store of ~2,000 customers ingested (built once per session)."""
    import pandas as pd

    from churn.generate import generate
    from flows.ingest import ingest_file
    from simulator.generate import SimulationConfig
    from storage import layout, sources

    paths = layout.Paths(tmp_path_factory.mktemp("store") / "home")
    generate(paths, SimulationConfig(customers=2000, days=600, seed=5, chunk_customers=1000))
    for f in sources.landing_files(paths):
        ingest_file(config(paths, "ingest"), f, now=pd.Timestamp("2025-06-01T00:00Z"))
    return paths


@pytest.fixture(scope="session")
def trained(small_store, tmp_path_factory, prefect_harness):
    """The small store with a champion trained on it (SQLite MLflow under the home; built once per session:
    tests that change more than scores and lists work on a copy)."""
    import shutil

    from flows.train import train_flow
    from storage import layout

    home = tmp_path_factory.mktemp("scored") / "home"
    shutil.copytree(small_store.home, home)
    paths = layout.Paths(home)
    train_flow(config(paths, "train", n_train_cutoffs=2))
    return paths


def config(paths_or_home, kind: str, **overrides):
    """A flow's configuration from the built-in defaults for this home (what `churn` builds from its settings)."""
    from churn.settings import defaults
    from storage.layout import Paths

    home = paths_or_home.home if isinstance(paths_or_home, Paths) else paths_or_home  # a Path's .home is Path.home
    if kind == "ingest":  # tests write a file and ingest it at once; the settle time has its own tests
        overrides.setdefault("settle_seconds", 0.0)
    return getattr(defaults(home), f"{kind}_config")(**overrides)


def java_missing() -> str | None:
    """Why Spark cannot start here (no Java 17+), or None. CI installs Java (scripts/install-system-deps)."""
    import re
    import shutil
    import subprocess

    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        return "no Java: Spark needs Java 17+ (scripts/install-system-deps installs Debian's openjdk-17-jre-headless)"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    m = re.search(r'version "(\d+)', out)
    if m is None or int(m.group(1)) < 17:
        return f"{java} is not Java 17+ ({out.splitlines()[0] if out else 'no version'}): Spark 4 needs 17+"
    return None


JAVA_MISSING = java_missing()
needs_java = pytest.mark.skipif(JAVA_MISSING is not None, reason=str(JAVA_MISSING))


@pytest.fixture(scope="session")
def spark_connect(tmp_path_factory):
    """A real Spark Connect server (local[2], gRPC on a free port of 127.0.0.1), started from PySpark's own jars as
    `$SPARK_HOME/sbin/start-connect-server.sh` would; yields its `sc://` URL."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pyspark

    home = Path(pyspark.__file__).parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
           "PYTHONPATH": str(root)}  # the server's Python workers run the project's scoring code
    log = tmp_path_factory.mktemp("spark-connect") / "server.log"
    server = subprocess.Popen(
        [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
         "--master", "local[2]", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
         "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.driver.host=127.0.0.1",
         "--conf", "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.shuffle.partitions=8", "spark-internal"],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    deadline = time.monotonic() + 180
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the Spark Connect server did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
    yield f"sc://127.0.0.1:{port}"
    server.terminate()
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (local[2] on 127.0.0.1) shared by every Spark test: starting one costs ~10 s."""
    from storage.spark import session

    s = session("local[2]", app_name="churn-tests")
    yield s
    s.stop()
