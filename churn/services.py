"""Local services: a Prefect server and an MLflow tracking server, state under the data folder.

`up` starts both as background processes (their own sessions) and records their pids in
`<home>/services/state.json`; `down` stops exactly those processes; `status` asks each server for
its health. While they are up, every `churn` command uses them (see `active_endpoints`).

A port already taken by another program is refused before anything starts (one error naming the port and
the setting to change), and a server counts as healthy only if the process listening on its port is one we
started (its session), not merely something answering there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from churn.errors import UserError
from storage import atomic, layout

log = logging.getLogger("churn.services")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SERVICES = ("prefect", "mlflow")


class ServiceError(UserError, RuntimeError):
    """A local server cannot be started (port taken, exited, no answer): one line for the user."""


def port_free(host: str, port: int) -> bool:
    """True if we can bind `host:port` now (a listener of any program, on any address, makes it False)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket in TIME_WAIT is not "taken"
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening_sockets(port: int) -> set[str]:
    """The `socket:[inode]` names of TCP sockets listening on `port` (any address, IPv4 or IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.add(f"socket:[{f[9]}]")
    return found


def _session(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])  # after "pid (comm)": state ppid pgrp session


def listeners(port: int, session: int | None = None) -> list[int]:
    """Pids holding a socket that listens on `port` (only those in `session` if given; others' processes
    we may not inspect are skipped)."""
    sockets = _listening_sockets(port)
    pids = []
    if not sockets:
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (session is not None and _session(int(entry.name)) != session):
            continue
        try:
            fds = os.listdir(entry / "fd")
            if any(os.readlink(entry / "fd" / fd) in sockets for fd in fds):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def owns_port(pid: int, port: int) -> bool:
    """True if the process we started as `pid` (or one of its children: same session) listens on `port`."""
    return bool(listeners(port, session=pid)) if _session(pid) == pid else False


def _port(state: dict, name: str) -> int:
    return urlsplit(state["prefect_api_url"] if name == "prefect" else state["mlflow_tracking_uri"]).port


def _ours_and_healthy(state: dict, name: str, url: str, timeout: float = 2.0) -> bool:
    pid = state[name]["pid"]
    return _alive(pid, name) and healthy(url, timeout) and owns_port(pid, _port(state, name))


def _port_taken(name: str, host: str, port: int) -> str:
    holders = listeners(port)
    who = ""
    if holders:
        cmd = Path(f"/proc/{holders[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        who = f" (pid {holders[0]}: {cmd[:80]})"
    return (f"port {port} on {host} is already in use by another program{who}, so the {name} server cannot "
            f"listen there: set {name}_port in churn.toml (or CHURN_{name.upper()}_PORT) to a free port")


def _state_path(home: Path) -> Path:
    return home / "services" / "state.json"


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _urls(host: str, prefect_port: int, mlflow_port: int) -> dict:
    h = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return {"prefect_api_url": f"http://{h}:{prefect_port}/api", "mlflow_tracking_uri": f"http://{h}:{mlflow_port}"}


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback URL we built
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _health_urls(state: dict) -> dict[str, str]:
    return {"prefect": state["prefect_api_url"] + "/health", "mlflow": state["mlflow_tracking_uri"] + "/health"}


def _alive(pid: int, needle: str) -> bool:
    """True if `pid` runs and is the service we started (its command line names it)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return needle in cmd


def read_state(home: Path) -> dict | None:
    p = _state_path(home)
    return json.loads(p.read_text()) if p.exists() else None


def active_endpoints(home: Path) -> dict | None:
    """The URLs of the services started for this home, if they are running and healthy."""
    state = read_state(home)
    if not state:
        return None
    if not all(_ours_and_healthy(state, name, url, timeout=1.0) for name, url in _health_urls(state).items()):
        return None  # not running, or something else answers on its port
    return {"prefect_api_url": state["prefect_api_url"], "mlflow_tracking_uri": state["mlflow_tracking_uri"]}


def server_environment(home: Path, prefect_api_url: str) -> dict[str, str]:
    """The servers' environment, built explicitly: the CLI's own quiet settings (e.g. no Prefect UI for its
    temporary API) must not reach the servers, whose UIs are the point of running them. The Prefect UI is
    told its API's address (it would call the default port, 4200, otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "CHURN_"))}
    env.update({"PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": prefect_api_url, "PREFECT_LOGGING_LEVEL": "WARNING", "DO_NOT_TRACK": "true",
                "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    return env


def up(home: Path, host: str = "127.0.0.1", prefect_port: int = 4200, mlflow_port: int = 5000,
       timeout: float = 120.0) -> dict:
    """Start both servers (no-op for those already running) and wait until they answer."""
    home = home.resolve()
    paths = layout.Paths(home)
    if host not in LOOPBACK:
        log.warning("!!! binding the servers to %s: anyone who can reach this machine can read and change your "
                    "runs and models. Put them behind a firewall or an authenticating proxy. !!!", host)
    state = read_state(home) or {}
    if state and all(_alive(state[s]["pid"], s) for s in ("prefect", "mlflow")):
        return status(home)
    down(home)
    ports = {"prefect": prefect_port, "mlflow": mlflow_port}
    if prefect_port == mlflow_port:
        raise ServiceError(f"prefect_port and mlflow_port are both {prefect_port}: give them different ports "
                           f"in churn.toml (or CHURN_PREFECT_PORT / CHURN_MLFLOW_PORT)")
    for name, port in ports.items():  # before starting anything: nothing to clean up, one clear error
        if not port_free(host, port):
            raise ServiceError(_port_taken(name, host, port))
    logs = home / "services"
    logs.mkdir(parents=True, exist_ok=True)
    paths.mlflow.mkdir(parents=True, exist_ok=True)
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    env = server_environment(home, _urls(host, prefect_port, mlflow_port)["prefect_api_url"])
    commands = {
        "prefect": [_bin("prefect"), "server", "start", "--host", host, "--port", str(prefect_port)],
        "mlflow": [_bin("mlflow"), "server", "--backend-store-uri", f"sqlite:///{paths.mlflow / 'mlflow.db'}",
                   "--artifacts-destination", str(paths.mlflow / "artifacts"), "--host", host,
                   "--port", str(mlflow_port), "--workers", "1"],
    }
    new = {"host": host, **_urls(host, prefect_port, mlflow_port)}
    for name, cmd in commands.items():
        out = open(logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(home), start_new_session=True)
        new[name] = {"pid": proc.pid, "command": cmd, "log": str(logs / f"{name}.log")}
    atomic.write_json_atomic(new, _state_path(home))
    deadline = time.monotonic() + timeout
    for name, url in _health_urls(new).items():
        while not _ours_and_healthy(new, name, url):
            if not _alive(new[name]["pid"], name):
                down(home)
                taken = "" if port_free(host, ports[name]) else "; " + _port_taken(name, host, ports[name])
                raise ServiceError(f"the {name} server exited during start-up; see {new[name]['log']}{taken}")
            if time.monotonic() > deadline:
                down(home)
                raise ServiceError(f"the {name} server did not answer {url} within {timeout:.0f} s; "
                                   f"see {new[name]['log']}")
            time.sleep(0.5)
    return status(home)


def down(home: Path, timeout: float = 20.0) -> dict:
    """Stop exactly the processes `up` started for this home (and their children)."""
    state = read_state(home.resolve())
    stopped = []
    if state:
        for name in ("prefect", "mlflow"):
            if name in state and _alive(state[name]["pid"], name):
                pid = state[name]["pid"]
                os.killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while _alive(pid, name) and time.monotonic() < deadline:
                    _reap(pid)
                    time.sleep(0.2)
                if _alive(pid, name):
                    os.killpg(pid, signal.SIGKILL)
                    _reap(pid)
                stopped.append(name)
        _state_path(home.resolve()).unlink(missing_ok=True)
    return {"stopped": stopped}


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(home: Path) -> dict:
    """Each service: pid, URL, and whether it is healthy: the process we started listens on its port and answers
    its health endpoint (`foreign`: something else answers there)."""
    state = read_state(home.resolve())
    if not state:
        return {"running": False, "services": {}}
    out = {}
    for name, url in _health_urls(state).items():
        pid, port = state[name]["pid"], _port(state, name)
        alive, answers = _alive(pid, name), healthy(url)
        ours = alive and answers and owns_port(pid, port)
        out[name] = {"pid": pid, "alive": alive, "healthy": ours, "foreign": answers and not ours, "port": port,
                     "url": state["prefect_api_url"] if name == "prefect" else state["mlflow_tracking_uri"],
                     "log": state[name]["log"]}
    return {"running": all(s["healthy"] for s in out.values()), "host": state["host"], "services": out}
