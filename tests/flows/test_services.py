"""End to end on real servers: `churn services up`, `churn serve`, a file dropped in the landing folder.

Everything runs as separate processes, as a user would run it; the servers listen on loopback
ports chosen for this test and every process is stopped at the end.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHURN = str(Path(sys.executable).with_name("churn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def wait_for(what: str, fn, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("services") / "home"
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "CHURN_"))}
    e.update(CHURN_HOME=str(home), CHURN_PREFECT_PORT=str(free_port()), CHURN_MLFLOW_PORT=str(free_port()),
             CHURN_SCHEDULE_TIMEZONE="Europe/London", CHURN_TRAIN_CRON="0 3 1 1,4,7,10 *",
             CHURN_N_TRAIN_CUTOFFS="2", CHURN_WATCH_INTERVAL_SECONDS="1")
    return home, e


def churn(env, *args, timeout=600, check=True):
    home, e = env
    r = subprocess.run([CHURN, *args], env=e, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"churn {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def services(env):
    home, _ = env
    up = json.loads(churn(env, "services", "up", "--json").stdout)
    try:
        yield up
    finally:
        churn(env, "services", "down", check=False)
        for s in up["services"].values():
            assert not Path(f"/proc/{s['pid']}/cmdline").exists() or \
                Path(f"/proc/{s['pid']}/cmdline").read_bytes() == b"", f"process {s['pid']} survived `down`"


@pytest.fixture(scope="module")
def served(env, services):
    """A trained champion, then `churn serve` running in the background."""
    home, e = env
    churn(env, "generate", "--customers", "1500", "--days", "500", "--seed", "3")
    quiet = churn(env, "ingest", "--quiet")
    trained = churn(env, "train")
    # progress: a line per stage with the seconds since the start, on stderr; --quiet silences it
    assert "] ingesting " not in quiet.stderr and "] training XGBoost on " in trained.stderr
    stages = [line for line in trained.stderr.splitlines() if line.startswith("[")]
    assert len(stages) >= 4 and all(line[1:].split(" s]")[0].strip().replace(".", "").isdigit() for line in stages)
    log = open(home / "serve.log", "w")
    proc = subprocess.Popen([CHURN, "serve"], env=e, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = services["services"]["prefect"]["url"]
    try:
        wait_for("the deployments", lambda: len(http("POST", f"{api}/deployments/filter", {})) == 5, 120)
        yield api
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError("`churn serve` did not stop on SIGTERM")
        finally:
            log.close()
        # retired cleanly: no automation left to create runs that would go Late
        assert http("POST", f"{api}/automations/filter", {}) == []


def runs_of(api: str, deployment: str) -> list[dict]:
    deps = {d["name"]: d["id"] for d in http("POST", f"{api}/deployments/filter", {})}
    return http("POST", f"{api}/flow_runs/filter",
                {"flow_runs": {"deployment_id": {"any_": [deps[deployment]]}}})


def test_services_status_reports_both_servers_healthy(env, services):
    st = json.loads(churn(env, "services", "status", "--json").stdout)
    assert st["running"] and st["host"] == "127.0.0.1"
    assert {n: s["healthy"] for n, s in st["services"].items()} == {"prefect": True, "mlflow": True}


def test_deployments_have_their_schedules_and_time_zones(served):
    deps = {d["name"]: d for d in http("POST", f"{served}/deployments/filter", {})}
    crons = {n: [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in d["schedules"]] for n, d in deps.items()}
    assert crons == {"churn-ingest": [("*/15 * * * *", "Europe/London")],
                     "churn-score": [("0 6 * * *", "Europe/London")],
                     "churn-winback": [("30 6 * * *", "Europe/London")],
                     "churn-train": [("0 3 1 1,4,7,10 *", "Europe/London")],
                     "churn-evaluate": [("0 7 * * *", "Europe/London")]}
    assert all(d["concurrency_limit"] == 1 or (d.get("global_concurrency_limit") or {}).get("limit") == 1
               for d in deps.values())


def test_a_landed_file_is_ingested_scored_and_listed_without_a_manual_step(env, served, services):
    home, _ = env
    scores = home / "scores"
    before = {p.name for p in scores.iterdir()} if scores.exists() else set()
    landing = home / "landing"
    tmp = landing / ".late.csv.tmp"
    tmp.write_text("event_id,customer_id,event_type,event_time,amount\n"
                   "late-1,C0000001,purchase,2024-05-20T10:00:00Z,12.5\n"
                   "late-2,C0000002,visit,2024-05-20T11:00:00Z,\n")
    tmp.rename(landing / "late.csv")

    def completed(dep):
        return [r for r in runs_of(served, dep) if r["state_type"] == "COMPLETED"]

    ingest = wait_for("an ingest run", lambda: completed("churn-ingest"), 180)
    score = wait_for("a score run", lambda: [r for r in completed("churn-score")
                                             if r["start_time"] >= ingest[0]["start_time"]], 180)
    assert score
    after = wait_for("the scores file", lambda: {p.name for p in scores.glob("as_of=*") if (p / "scores.parquet").exists()}
                     - before or None, 30)
    assert after == {"as_of=2024-05-20"}
    # the day just published gets its win-back list, written after the scores it reads
    winback = wait_for("a win-back run", lambda: [r for r in completed("churn-winback")
                                                  if r["start_time"] >= score[0]["start_time"]], 180)
    assert winback[0]["parameters"]["as_of"] == "2024-05-20"
    lists = wait_for("the win-back list", lambda: list((home / "winback" / "as_of=2024-05-20").glob("*.csv")), 30)
    assert lists and lists[0].stat().st_mtime >= (scores / "as_of=2024-05-20" / "_SUCCESS").stat().st_mtime
    # each run has a readable name and shows its results as a table artifact in the Prefect UI
    assert ingest[0]["name"] == "ingest late.csv" and score[0]["name"] == "score as of latest"
    assert winback[0]["name"] == "winback 2024-05-20"
    arts = http("POST", f"{served}/artifacts/filter", {})
    assert {"ingest-accounting", "training-metrics", "scores-tiers", "winback-top"} <= {a["key"] for a in arts}
    of_run = {(a["key"], a["flow_run_id"]): a for a in arts}
    table = json.loads(of_run["ingest-accounting", ingest[0]["id"]]["data"])
    assert table[-1]["file"] == "TOTAL" and table[-1]["rows_in"] == 2
    assert of_run["ingest-accounting", ingest[0]["id"]]["type"] == "table"
    def run_log():
        return [e["message"] for e in http("POST", f"{served}/logs/filter",
                                           {"logs": {"flow_run_id": {"any_": [winback[0]["id"]]}}})]
    wait_for("the win-back line in the run's log", lambda: any("win-back list for 2024-05-20" in m for m in run_log())
             or print(run_log()), 30)
    top = json.loads(of_run["winback-top", winback[0]["id"]]["data"])
    first_row = lists[0].read_text().splitlines()[1]
    assert 0 < len(top) <= 20 and first_row.split(",")[1] == top[0]["customer_id"], first_row
    ledger = list((home / "state" / "ingested").glob("*.json"))
    assert any(json.loads(p.read_text())["file"].endswith("late.csv") for p in ledger)

    # the MLflow server lists the training run with its metrics, and the champion alias
    mlflow = services["services"]["mlflow"]["url"]
    exp = http("GET", f"{mlflow}/api/2.0/mlflow/experiments/get-by-name?experiment_name=churn")["experiment"]
    runs = http("POST", f"{mlflow}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    metrics = {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]}
    assert metrics["val_roc_auc"] > metrics["recency_rule_90d_roc_auc"]
    alias = http("GET", f"{mlflow}/api/2.0/mlflow/registered-models/alias?name=churn&alias=champion")
    assert alias["model_version"]["run_id"] == runs[0]["info"]["run_id"]


def chromium_page(tmp_path):
    """A function that loads a URL in headless Chromium and returns the DOM after its scripts ran."""
    chromium = shutil.which("chromium")
    # a failure, never a skip: `make test` installs it (scripts/install-system-deps)
    assert chromium, "chromium is not installed: run `make system-deps` (Debian's chromium; `make test` does it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=20000"]

    def page(url: str) -> str:
        return subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True,
                              timeout=120).stdout
    return page


def test_mlflow_ui_in_headless_chromium_shows_the_run_and_its_metrics(served, services, tmp_path):
    page = chromium_page(tmp_path)
    mlflow = services["services"]["mlflow"]["url"]
    exp = http("GET", f"{mlflow}/api/2.0/mlflow/experiments/get-by-name?experiment_name=churn")["experiment"]
    run = http("POST", f"{mlflow}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"][0]
    experiment_page = page(f"{mlflow}/#/experiments/{exp['experiment_id']}/runs")  # "Training runs"
    assert run["info"]["run_name"] in experiment_page
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in exp["tags"]
    run_page = page(f"{mlflow}/#/experiments/{exp['experiment_id']}/runs/{run['info']['run_id']}")
    assert run["info"]["run_name"] in run_page and "val_roc_auc" in run_page


def test_prefect_ui_in_headless_chromium_shows_a_flow_run(served, services, tmp_path):
    """The dashboard is on (the CLI's quiet PREFECT_UI_ENABLED=false must not reach the server) and calls
    the API of this server, on its own port."""
    page = chromium_page(tmp_path)
    done = http("POST", f"{served}/flow_runs/filter",  # (scheduled runs of the cron deployments come first otherwise)
                {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 5})
    assert done, "no completed flow run on the server"
    ui = served.removesuffix("/api")
    run_page = page(f"{ui}/runs/flow-run/{done[0]['id']}")
    assert done[0]["name"] in run_page and "Completed" in run_page, run_page[:2000]


def test_json_output_stays_json_with_the_servers_up(env, served):
    """MLflow prints "View run ... at <url>" on stdout for a remote tracking server: never into our --json."""
    r = churn(env, "score", "--as-of", "2024-05-20", "--json")
    summary = json.loads(r.stdout)
    assert summary["as_of"] == "2024-05-20" and summary["customers"] > 0
    assert "View run" not in r.stdout + r.stderr


# ------------------------------------------------------------ ports taken by other programs (no real servers)

@pytest.fixture
def foreign_server(tmp_path):
    """A plain http.server on a free loopback port that answers 200 on both health URLs, like ours would."""
    root = tmp_path / "foreign"
    (root / "api").mkdir(parents=True)
    (root / "api" / "health").write_text("true")
    (root / "health").write_text("OK")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the foreign server", lambda: _answers(f"http://127.0.0.1:{port}/health"), 20, every=0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and text.encode() in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("taken", ["prefect", "mlflow"])
def test_up_refuses_a_port_taken_by_another_program_and_starts_nothing(tmp_path, foreign_server, taken):
    home = tmp_path / "home"
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "CHURN_"))}
    ports = {"prefect": free_port(), "mlflow": free_port(), taken: foreign_server}
    e.update(CHURN_HOME=str(home), CHURN_PREFECT_PORT=str(ports["prefect"]), CHURN_MLFLOW_PORT=str(ports["mlflow"]))
    r = churn((home, e), "services", "up", timeout=120, check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: port {foreign_server} on 127.0.0.1 is already in use"), r.stderr
    assert f"{taken}_port" in err[0] and f"CHURN_{taken.upper()}_PORT" in err[0] and "http.server" in err[0]
    assert not (home / "services" / "state.json").exists()
    assert _processes_mentioning(str(home)) == []  # nothing was started, nothing left behind
    st = churn((home, e), "services", "status", "--json", check=False)
    assert st.returncode == 3 and json.loads(st.stdout)["running"] is False


def test_status_does_not_call_a_foreign_server_on_our_port_healthy(tmp_path, foreign_server):
    """Our processes run (e.g. failed to bind and hang) while another program answers on the ports."""
    from churn import services

    home = tmp_path / "home"
    (home / "services").mkdir(parents=True)
    sleepers = {name: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", name],
                                       start_new_session=True) for name in ("prefect", "mlflow")}
    try:
        # Popen returns once the child's exec began; its command line shows a moment later (seen under load)
        for name, p in sleepers.items():
            shown = Path(f"/proc/{p.pid}/cmdline")
            wait_for(f"the {name} stand-in's command line", lambda s=shown, n=name: n in s.read_bytes().decode(), 10,
                     every=0.05)
        url = f"http://127.0.0.1:{foreign_server}"
        (home / "services" / "state.json").write_text(json.dumps({
            "host": "127.0.0.1", "prefect_api_url": f"{url}/api", "mlflow_tracking_uri": url,
            **{n: {"pid": p.pid, "command": [], "log": str(home / "services" / f"{n}.log")}
               for n, p in sleepers.items()}}))
        st = services.status(home)
        assert {n: (s["alive"], s["healthy"]) for n, s in st["services"].items()} == \
            {"prefect": (True, False), "mlflow": (True, False)}
        assert st["running"] is False and all(s["foreign"] for s in st["services"].values())
        assert services.active_endpoints(home) is None  # other commands do not send their runs there
        e = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "CHURN_"))}
        r = churn((home, {**e, "CHURN_HOME": str(home)}), "services", "status", check=False)
        assert r.returncode == 3 and "healthy" not in r.stdout and "answered by another program" in r.stdout
    finally:
        for p in sleepers.values():
            p.kill()
            p.wait()
