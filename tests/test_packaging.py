"""The wheel works on its own: built from this checkout, installed with the locked dependencies into a
fresh virtual environment, and run outside the checkout (so none of its sources can be imported)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# every top-level package of the checkout must be in the wheel (tests/ is not a package)
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))

EVENTS = """event_id,customer_id,event_type,event_time,amount
e1,c1,visit,2025-01-02T10:00:00Z,
e2,c1,purchase,2025-01-03T11:00:00Z,25.50
e3,c2,purchase,2025-01-04T12:00:00Z,10.00
e3,c2,purchase,2025-01-04T12:00:00Z,10.00
e5,c3,teleport,2025-01-05T12:00:00Z,
"""


def find_uv() -> str:
    """The uv that `make install` bootstraps into .tools/, else one on PATH; never a silent skip."""
    for candidate in (ROOT / ".tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail(f"uv not found: neither {ROOT / '.tools/bin/uv'} (created by `make install`) nor `uv` on PATH")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that points back at the checkout or the test session."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "CHURN_HOME")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith(("PREFECT_", "MLFLOW_", "CHURN_"))}
    return {**env, "UV_PYTHON_DOWNLOADS": "never", **extra}


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    uv = find_uv()
    env = clean_env()
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    run([uv, "build", "--wheel", "--quiet", "--out-dir", str(dist), str(ROOT)], ROOT, env)
    (wheel,) = dist.glob("churn-*.whl")
    requirements = run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--quiet"],
                       ROOT, env).stdout
    (tmp_path / "requirements.txt").write_text(requirements)
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    run([uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(tmp_path / "requirements.txt"),
         str(wheel)], tmp_path, env)

    # every package is imported from the new environment's site-packages, none from the checkout
    where = json.loads(run([str(python), "-c", "import importlib, json, sys, sysconfig; print(json.dumps("
                            "[sysconfig.get_paths()['purelib'], {p: importlib.import_module(p).__file__ "
                            "for p in sys.argv[1:]}]))", *PACKAGES], work, env).stdout)
    site = Path(where[0]).resolve()
    assert site.is_relative_to(venv.resolve()) and not work.resolve().is_relative_to(ROOT)
    for package, file in where[1].items():
        assert Path(file).resolve().is_relative_to(site), f"{package} imported from {file}, not from {site}"
        assert not Path(file).resolve().is_relative_to(ROOT), f"{package} imported from the checkout: {file}"

    churn = str(venv / "bin" / "churn")
    assert "ingest" in run([churn, "--help"], work, env).stdout

    (work / "events.csv").write_text(EVENTS)
    out = run([churn, "--home", str(work / "home"), "ingest", str(work / "events.csv"), "--json"], work, env)
    summary = json.loads(out.stdout)
    assert summary["files_ingested"] == 1 and summary["files_rejected"] == 0
    assert summary["rows_in"] == summary["stored"] + summary["quarantined"] + summary["duplicates"]
    assert (summary["rows_in"], summary["stored"], summary["quarantined"], summary["duplicates"]) == (5, 3, 1, 1)
    assert list((work / "home" / "state" / "ingested").glob("*.json")), "no ledger record written"
