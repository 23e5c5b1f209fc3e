"""Paths from settings and from events cannot lead out of the data folder unless explicitly allowed."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from churn.settings import load_settings
from storage import layout, store
from tests.conftest import config


def test_relative_paths_are_read_against_the_base_and_may_not_climb_out(tmp_path):
    base = tmp_path / "home"
    (base / "landing").mkdir(parents=True)
    assert layout.resolve_inside(base, "landing/a.csv", "file") == (base / "landing" / "a.csv").resolve()
    assert layout.resolve_inside(base, base / "landing" / "a.csv", "file") == (base / "landing" / "a.csv").resolve()
    for bad in ("../outside.csv", "landing/../../outside.csv", "/etc/passwd", str(tmp_path / "other")):
        with pytest.raises(layout.PathOutside, match="outside"):
            layout.resolve_inside(base, bad, "file")


def test_a_symlink_inside_that_points_outside_is_refused(tmp_path):
    base = tmp_path / "home"
    (base / "landing").mkdir(parents=True)
    secret = tmp_path / "secret.csv"
    secret.write_text("x")
    os.symlink(secret, base / "landing" / "innocent.csv")
    with pytest.raises(layout.PathOutside, match="secret.csv"):
        layout.resolve_inside(base / "landing", "innocent.csv", "file to ingest")


def test_outside_paths_need_the_explicit_setting_and_must_then_be_absolute(tmp_path):
    base = tmp_path / "home"
    base.mkdir()
    outside = tmp_path / "shared" / "x.db"
    assert layout.resolve_inside(base, outside, "db", allow_outside=True) == outside.resolve()
    with pytest.raises(layout.PathOutside, match="absolute"):
        layout.resolve_inside(base, "../shared/x.db", "db", allow_outside=True)


def test_a_sqlite_tracking_store_in_settings_stays_in_the_data_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", "sqlite:///mlflow/other.db")
    assert load_settings(home=str(home)).tracking_uri == f"sqlite:///{(home / 'mlflow' / 'other.db').resolve()}"
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with pytest.raises(layout.PathOutside, match="mlflow_tracking_uri"):
        load_settings(home=str(home)).tracking_uri  # noqa: B018
    monkeypatch.setenv("CHURN_ALLOW_OUTSIDE_PATHS", "true")
    assert load_settings(home=str(home)).tracking_uri == f"sqlite:///{(tmp_path / 'elsewhere.db').resolve()}"
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_settings(home=str(home)).tracking_uri == "http://127.0.0.1:5000"


def test_the_cli_reports_an_escaping_setting_as_a_clear_error(tmp_path, monkeypatch, capsys):
    from churn.cli import main

    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", "sqlite:///../../escape.db")
    assert main(["--home", str(tmp_path / "home"), "score"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mlflow_tracking_uri '../../escape.db' resolves to") and "Traceback" not in err


def test_an_event_naming_a_file_outside_the_landing_folder_ingests_nothing(tmp_path, prefect_harness):
    """The ingest deployment takes file paths from `churn.events.landed` payloads: they must be in landing/."""
    from flows.ingest import ingest_flow

    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    outside = tmp_path / "outside.csv"
    outside.write_text("customer_id,event_type,event_time\nc1,visit,2024-01-01T00:00:00Z\n")
    for payload_path in (str(outside), str(home / "landing" / ".." / ".." / "outside.csv")):
        with pytest.raises(layout.PathOutside, match="file to ingest"):
            ingest_flow(config(home, "ingest"), files=[payload_path])
    assert not (home / "events").exists() and outside.exists()
    inside = home / "landing" / "ok.csv"
    inside.write_text(outside.read_text())
    r = ingest_flow(config(home, "ingest"), files=[str(inside)])
    assert r["stored"] == 1
    assert pd.Timestamp(store.read_events(layout.Paths(home))["event_time"].iloc[0]) == pd.Timestamp("2024-01-01T00:00Z")


def test_a_symlink_in_landing_that_leads_outside_is_reported_and_left_alone(tmp_path, prefect_harness):
    """The sweep and the watcher never read, copy or delete a file reached through a symlink out of landing/."""
    from churn.serve import LandingWatcher
    from flows.ingest import ingest_flow
    from storage import sources

    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"\xff\xfe not a csv \x00")  # unparseable: it used to be copied into rejected/
    os.symlink(secret, home / "landing" / "innocent.csv")
    inner = home / "landing" / "sub"
    inner.mkdir()
    os.symlink(tmp_path, inner / "up.csv")  # a directory out, for good measure
    (home / "landing" / "ok.csv").write_text("customer_id,event_type,event_time\nc1,visit,2024-01-01T00:00:00Z\n")

    scan = sources.landing_scan(layout.Paths(home))
    assert [p.name for p in scan.files] == ["ok.csv"] and [p.name for p, _ in scan.refused] == ["innocent.csv"]
    s = ingest_flow(config(layout.Paths(home), "ingest"))  # (a bare Path's .home is Path.home)
    by_name = {f["file"].rsplit("/", 1)[-1]: f for f in s["files"]}
    assert by_name["innocent.csv"]["status"] == "refused" and "secret.csv" in by_name["innocent.csv"]["error"]
    assert by_name["ok.csv"]["stored"] == 1 and s["files_rejected"] == 0
    assert not (home / "rejected").exists() or not any((home / "rejected").iterdir())
    assert (home / "landing" / "innocent.csv").is_symlink() and secret.read_bytes().startswith(b"\xff\xfe")

    watcher = LandingWatcher(layout.Paths(home), interval=0)
    watcher.poll()
    watcher.poll()
    assert all("innocent" not in str(p) for p in watcher._seen_size)
