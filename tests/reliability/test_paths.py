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


# Every spelling of a local tracking store, judged by the file it names (relative: against the data folder).
INSIDE = {
    "sqlite:///mlflow/a.db": "mlflow/a.db",
    "sqlite+pysqlite:///mlflow/b.db": "mlflow/b.db",
    "SQLITE:///mlflow/c.db": "mlflow/c.db",
    "Sqlite+PySQLite:///d.db": "d.db",
    "sqlite:///mlflow/../e.db": "e.db",
    "sqlite:///file:mlflow/f.db?mode=rwc&uri=true": "mlflow/f.db",
    "sqlite:///mlflow/g.db?check_same_thread=false": "mlflow/g.db",
    "  sqlite:///h.db  ": "h.db",
    "sqlite:///{home}/mlflow/i.db": "mlflow/i.db",
    "sqlite:////{home_rel}/mlflow/j.db": "mlflow/j.db",
}
OUTSIDE = [
    "sqlite:///../escape.db", "sqlite:////{tmp}/escape.db", "sqlite+pysqlite:///../escape.db",
    "SQLITE:///../escape.db", "sqlite:///mlflow/../../escape.db", "sqlite:///file:../escape.db?mode=rwc&uri=true",
    "sqlite:///file:{tmp}/escape.db?uri=true", "sqlite:///~/escape.db", "sqlite:///link/escape.db",
    "file:{tmp}/escape-store", "file://{tmp}/escape-store", "file:../escape-store", "../escape-store",
    "{tmp}/escape-store", "link/escape-store",
]
REFUSED = ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file:x.db?mode=memory&uri=true",
           "sqlite://somehost/x.db", "oracle://u:p@h/db", "nonsense://", "file://otherhost/x", "sqlite:x.db", "sqlite:/x.db", "://x", "s3://bucket/mlflow",
           "databricks://profile"]


def _spell(uri: str, home, tmp) -> str:
    return uri.format(home=home.resolve(), home_rel=str(home.resolve()).lstrip("/"), tmp=tmp)


def _files(root) -> set:
    return {p for p in root.rglob("*")}


@pytest.fixture
def confined(tmp_path, monkeypatch):
    """A data folder with a symlink `link` pointing outside it; the current directory elsewhere."""
    home, outside, cwd = tmp_path / "home", tmp_path / "outside", tmp_path / "cwd"
    for d in (home / "mlflow", outside, cwd):
        d.mkdir(parents=True)
    os.symlink(outside, home / "link")
    monkeypatch.chdir(cwd)
    return home, tmp_path


@pytest.mark.parametrize("uri", list(INSIDE))
def test_every_spelling_of_a_sqlite_store_inside_the_data_folder_is_kept_there(confined, monkeypatch, uri):
    import sqlalchemy

    home, tmp = confined
    before = _files(tmp)
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", _spell(uri, home, tmp))
    resolved = load_settings(home=str(home)).tracking_uri
    assert resolved == f"sqlite:///{(home / INSIDE[uri]).resolve()}"
    engine = sqlalchemy.create_engine(resolved)  # what MLflow does with it: the file appears where we said
    with engine.connect() as c:
        c.exec_driver_sql("create table t (x int)")
    engine.dispose()
    assert _files(tmp) - before == {(home / INSIDE[uri]).resolve()}


@pytest.mark.parametrize("uri", ["file:mlruns", "file:./mlflow/runs", "mlflow/runs", "file:///{home}/mlflow/runs",
                                 "file://localhost{home}/mlflow/runs", "{home}/mlflow/runs"])
def test_a_file_store_or_plain_path_inside_the_data_folder_is_kept_there(confined, monkeypatch, uri):
    home, tmp = confined
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", _spell(uri, home, tmp).replace("file:////", "file:///"))
    resolved = load_settings(home=str(home)).tracking_uri
    assert resolved.startswith(f"file://{home.resolve()}/")


@pytest.mark.parametrize("uri", OUTSIDE)
def test_every_spelling_of_a_store_outside_the_data_folder_is_refused_and_creates_nothing(confined, monkeypatch,
                                                                                         capsys, uri):
    from churn.cli import main

    home, tmp = confined
    before = _files(tmp)
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", _spell(uri, home, tmp))
    with pytest.raises(layout.PathOutside, match="mlflow_tracking_uri"):
        load_settings(home=str(home)).tracking_uri  # noqa: B018
    assert main(["--home", str(home), "train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mlflow_tracking_uri") and "outside" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert {p for p in _files(tmp) - before if "prefect" not in p.parts} == set()


@pytest.mark.parametrize("uri", REFUSED)
def test_unusable_tracking_uris_are_one_clear_error(confined, monkeypatch, capsys, uri):
    from churn.cli import main
    from storage.tracking import TrackingUriError

    home, tmp = confined
    before = _files(tmp)
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingUriError, match="mlflow_tracking_uri"):
        load_settings(home=str(home)).tracking_uri  # noqa: B018
    assert main(["--home", str(home), "train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mlflow_tracking_uri") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _files(tmp) == before


def test_outside_stores_in_any_spelling_are_allowed_only_explicitly_and_absolutely(confined, monkeypatch):
    home, tmp = confined
    monkeypatch.setenv("CHURN_ALLOW_OUTSIDE_PATHS", "true")
    for uri in ("sqlite:////{tmp}/shared.db", "sqlite+pysqlite:////{tmp}/shared.db", "SQLITE:////{tmp}/shared.db"):
        monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", _spell(uri, home, tmp))
        assert load_settings(home=str(home)).tracking_uri == f"sqlite:///{(tmp / 'shared.db').resolve()}"
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", "sqlite+pysqlite:///../shared.db")
    with pytest.raises(layout.PathOutside, match="absolute"):
        load_settings(home=str(home)).tracking_uri  # noqa: B018
    for remote in ("http://127.0.0.1:5000", "https://mlflow.example.org", "postgresql://u:p@db/mlflow"):
        monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", remote)
        assert load_settings(home=str(home)).tracking_uri == remote


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
    # the sub-folder is reported too (ingest reads only the files directly in landing/), and never entered
    assert [p.name for p in scan.files] == ["ok.csv"] and [p.name for p, _ in scan.refused] == ["innocent.csv",
                                                                                               "sub"]
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


def test_a_symlink_loop_or_a_long_name_in_landing_never_stops_the_sweep(tmp_path, prefect_harness):
    """Each bad entry is refused or rejected on its own; the good file of the same sweep is stored."""
    from flows.ingest import ingest_flow
    from storage import sources

    home = tmp_path / "home"
    landing = home / "landing"
    landing.mkdir(parents=True)
    os.symlink(landing / "b.csv", landing / "a.csv")  # a loop: a -> b -> a
    os.symlink(landing / "a.csv", landing / "b.csv")
    long_name = "x" * 240 + ".csv"  # legal (250 bytes), but too long once rejected/ adds its time stamp
    (landing / long_name).write_bytes(b"\xff\xfe not UTF-8")
    (landing / "ok.csv").write_text("customer_id,event_type,event_time\nc1,visit,2024-01-01T00:00:00Z\n")
    scan = sources.landing_scan(layout.Paths(home))
    assert sorted(p.name for p, _ in scan.refused) == ["a.csv", "b.csv"]
    s = ingest_flow(config(layout.Paths(home), "ingest"))
    by_name = {f["file"].rsplit("/", 1)[-1]: f for f in s["files"]}
    assert by_name["ok.csv"]["stored"] == 1
    assert by_name["a.csv"]["status"] == by_name["b.csv"]["status"] == "refused"
    assert by_name[long_name]["status"] == "rejected" and not (landing / long_name).exists()
    kept = [p.name for p in (home / "rejected").iterdir()]
    assert len(kept) == 2 and all(len(n.encode()) <= 255 for n in kept) and any(n.endswith(".csv") for n in kept)


def test_every_landing_entry_ingest_will_not_read_is_reported_never_silently_ignored(tmp_path):
    """A delivery in a form ingest does not read (orders.txt, .bz2, a sub-folder, a FIFO, a folder named like a
    file, a dangling symlink) is reported as refused with why; the producer's temp names and markers are not."""
    from storage import sources

    landing = tmp_path / "home" / "landing"
    landing.mkdir(parents=True)
    for name in ("orders.txt", "orders.tsv", "orders.csv.bz2", "ok.csv", "ok.csv.done", ".hidden.csv",
                 "x.csv.part", "x.csv.tmp"):
        (landing / name).write_text("customer_id,event_type,event_time\n")
    (landing / "subdir").mkdir()
    (landing / "subdir" / "inner.csv").write_text("customer_id,event_type,event_time\n")
    (landing / "dir.csv").mkdir()
    os.mkfifo(landing / "pipe.csv")
    os.symlink(landing / "gone.csv", landing / "dangling.csv")
    scan = sources.landing_scan(layout.Paths(tmp_path / "home"))
    assert [p.name for p in scan.files] == ["ok.csv"]
    why = {p.name: w for p, w in scan.refused}
    assert sorted(why) == ["dangling.csv", "dir.csv", "orders.csv.bz2", "orders.tsv", "orders.txt", "pipe.csv",
                           "subdir"], why
    assert "does not read" in why["orders.txt"] and ".parquet" in why["orders.txt"]
    assert "a folder" in why["subdir"] and "not a regular file" in why["pipe.csv"]


def test_a_rejected_symlink_inside_landing_leaves_a_readable_copy_not_a_dangling_link(tmp_path):
    from flows.ingest import ingest_file
    from tests.conftest import NOW

    paths = layout.Paths(tmp_path / "home")
    paths.landing.mkdir(parents=True)
    (paths.landing / "real.csv").write_bytes(b"\xff\xfe not UTF-8\n")
    os.symlink("real.csv", paths.landing / "link.csv")  # relative: it would dangle once moved elsewhere
    r = ingest_file(config(paths, "ingest"), paths.landing / "link.csv", now=NOW)
    assert r["status"] == "rejected" and not (paths.landing / "link.csv").is_symlink()
    kept = [p for p in paths.rejected.iterdir() if p.name.endswith("link.csv")]
    assert len(kept) == 1 and not kept[0].is_symlink() and kept[0].read_bytes() == b"\xff\xfe not UTF-8\n"
