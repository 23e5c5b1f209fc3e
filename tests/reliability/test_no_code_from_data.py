"""Nothing that can execute code is loaded from the data folder or from input files.

Two checks: the source never reaches for a code-executing format (pickle and its relatives, eval,
unsafe YAML), and a whole pipeline run (ingest, train, register, load the champion, score,
win-back) completes with every unpickling entry point made to fail loudly.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pandas as pd

from tests.conftest import config
from tests.reliability import helpers

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "features", "models", "ingestion", "expectations", "simulator")
FORBIDDEN = re.compile(r"\bimport pickle\b|\bcloudpickle\b|\bjoblib\b|\bdill\b|\bshelve\b|\bmarshal\b|read_pickle"
                       r"|allow_pickle\s*=\s*True|torch\.load|yaml\.load\(|yaml\.unsafe_load|\beval\(|\bexec\("
                       r"|mlflow\.pyfunc\.load_model|mlflow\.sklearn")


def test_the_source_never_uses_a_code_executing_format():
    hits = []
    for package in PACKAGES:
        for f in sorted((ROOT / package).rglob("*.py")):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if FORBIDDEN.search(line):
                    hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []


def test_a_whole_run_never_unpickles(small_store, tmp_path, monkeypatch):
    from flows.score import score
    from flows.winback import winback
    from storage.tracking import load_champion, setup

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pd, "read_pickle", refuse)

    paths = helpers.store_copy(small_store, tmp_path / "home", without=("mlflow", "scores", "winback"))
    uri = f"sqlite:///{paths.mlflow / 'mlflow.db'}"
    # ingest one more file (CSV) on top of the store
    src = paths.landing / "extra.csv"
    src.write_text("event_id,customer_id,event_type,event_time,amount\nx1,c1,purchase,2024-03-01T10:00:00Z,5\n")
    from flows.ingest import ingest_file

    assert ingest_file(config(paths, "ingest"), src, now=pd.Timestamp("2025-06-01T00:00Z"))["stored"] == 1
    frame, info = helpers.snapshots(paths)
    helpers.register(paths, frame, info, helpers.fit(frame), uri)
    setup(uri, "churn", paths.mlflow / "artifacts")
    model, _ = load_champion("churn")
    assert model.get_booster().num_boosted_rounds() > 0
    r = score(config(paths, "score", exact_reasons_top_n=100), None, now=pd.Timestamp("2025-06-01T00:00Z"))
    assert r["customers"] > 0
    assert winback(config(paths, "winback"), None)["customers"] >= 0
    assert calls == []
    # the stored model is XGBoost's own format (UBJSON), not a pickle
    stored = [p.name for p in (paths.mlflow / "artifacts").rglob("*") if p.is_file()]
    assert any(n.endswith(".ubj") for n in stored) and not any(n.endswith((".pkl", ".pickle", ".joblib"))
                                                               for n in stored)
