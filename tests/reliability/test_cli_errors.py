"""Wrong settings, wrong flags and missing inputs: one `error:` line, exit code 2, before anything is written
or Prefect starts; errors that need a person are never retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from churn.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run `churn` in-process from an empty folder, with no CHURN_*/Prefect API settings inherited;
    returns (exit code, stderr). The environment `main` sets up is restored afterwards."""
    saved = dict(os.environ)
    for k in list(os.environ):
        if k.startswith("CHURN_") or k in ("PREFECT_API_URL", "PREFECT_HOME"):
            monkeypatch.delenv(k)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)

    def run(*argv: str) -> tuple[int, str]:
        try:
            rc = main(list(argv))
        except SystemExit as e:  # argparse
            rc = e.code
        return rc, capsys.readouterr().err

    yield run
    os.environ.clear()
    os.environ.update(saved)


def assert_one_error_line(rc: int, err: str, *needles: str) -> str:
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def tiny_store(home: Path, days: list[str]) -> None:
    """An event store holding one purchase on each of `days` (enough for the date checks)."""
    import pandas as pd
    import pyarrow as pa

    from expectations.contract import EVENT_SCHEMA
    from expectations.quarantine import QUARANTINE_SCHEMA
    from storage import layout, store

    rows = [{"event_id": f"e{i}", "customer_id": "c1", "event_type": "purchase",
             "event_time": pd.Timestamp(d, tz="UTC").to_pydatetime(), "amount": 10.0} for i, d in enumerate(days)]
    store.commit_batch(layout.Paths(home), "b", pa.Table.from_pylist(rows, schema=EVENT_SCHEMA).append_column(
        "ingest_batch", pa.array(["b"] * len(rows))), QUARANTINE_SCHEMA.empty_table(), {}, None)


def fake_scores(home: Path, day: str, complete: bool = True) -> None:
    """A published scores file for `day`, with its _SUCCESS marker unless its write was cut short (only their
    presence matters to the checks made before the flow)."""
    f = home / "scores" / f"as_of={day}" / "scores.parquet"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"PAR1")
    if complete:
        f.with_name("_SUCCESS").write_text(json.dumps({"as_of": day}))  # a record naming its day


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ------------------------------------------------------------------ 1. wrong settings and flags

BAD_SETTINGS = {
    "tier_high_not_above_medium": ({"CHURN_TIER_HIGH": "0.4", "CHURN_TIER_MEDIUM": "0.5"},
                                   ["setting tier_high:", "above tier_medium"]),
    "tier_high_above_one": ({"CHURN_TIER_HIGH": "1.5"}, ["setting tier_high:", "less than or equal to 1"]),
    "activity_type_unknown": ({"CHURN_ACTIVITY_TYPES": '["purchse"]'},
                              ["setting activity_types:", "purchse", "'purchase'"]),
    "timezone_unknown": ({"CHURN_TIMEZONE": "Europe/Lndon"}, ["setting timezone:", "IANA"]),
    "schedule_timezone_unknown": ({"CHURN_SCHEDULE_TIMEZONE": "Mars/Olympus"}, ["setting schedule_timezone:"]),
    "winback_action_for_no_reason_category": ({"CHURN_WINBACK_ACTIONS": '{"complaint": "call them"}'},
                                              ["setting winback_actions:", "['complaint']", "'complaints'"]),
    "port_out_of_range": ({"CHURN_PREFECT_PORT": "70000"}, ["setting prefect_port:", "65535"]),
    "currency_not_a_code": ({"CHURN_CURRENCY": "pounds"}, ["setting currency:", "'pounds'", "ISO 4217", "'GBP'"]),
    "engine_unknown": ({"CHURN_ENGINE": "polars"}, ["setting engine:", "'polars'", "duckdb, spark"]),
    "horizon_not_a_number": ({"CHURN_HORIZON_DAYS": "abc"}, ["setting horizon_days:", "not a whole number", "'abc'"]),
    "activity_types_plain_text": ({"CHURN_ACTIVITY_TYPES": "purchase"},
                                  ["setting activity_types:", "must be JSON", "('purchase' is not)"]),
    "config_file_missing": ({"CHURN_CONFIG": "/nonexistent/churn.toml"},
                            ["$CHURN_CONFIG", "/nonexistent/churn.toml", "does not exist"]),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
@pytest.mark.parametrize("command", ["train", "score", "winback"])
def test_a_wrong_setting_is_one_line_naming_it_before_anything_runs(cli, tmp_path, monkeypatch, case, command):
    env, needles = BAD_SETTINGS[case]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    assert_one_error_line(*cli("--home", str(home), command), *needles)
    assert not home.exists()


@pytest.mark.parametrize("toml, needles", [
    ("tier_high = \n", ["is not valid TOML", "line 1"]),
    ("tier_hihg = 0.8\n", ["unknown setting 'tier_hihg'", "did you mean 'tier_high'"]),
    ('timezone = "Nowhere/Town"\n', ["setting timezone:", "unknown time zone 'Nowhere/Town'"]),
    (b'timezone = "\xff"\n', ["is not UTF-8 text", "save it as UTF-8"]),
    ("[model]\nlearning_rate = -0.1\n", ["setting model:", "learning_rate: must be a number between 1e-06 and 1"]),
    ("landing_settle_seconds = inf\n", ["setting landing_settle_seconds:", "finite"]),
    ("landing_incomplete_seconds = nan\n", ["setting landing_incomplete_seconds:", "finite"]),
    ("landing_settle_seconds = 1e300\n", ["setting landing_settle_seconds:", "less than or equal to"]),
    ("future_tolerance_hours = -5\n", ["setting future_tolerance_hours:", "greater than or equal to 0"]),
    ("seed = -1\n", ["setting seed:", "greater than or equal to 0"]),
    ("watch_interval_seconds = 0\n", ["setting watch_interval_seconds:", "greater than 0"]),
    ("generate_customers = -3\n", ["setting generate_customers:", "greater than or equal to 1"]),
    ("drift_psi_threshold = inf\n", ["setting drift_psi_threshold:", "finite"]),
    # types are read strictly from the file: nothing is silently converted (round 4)
    ("seed = true\n", ["setting seed:", "must be a whole number", "got true"]),
    ('horizon_days = "90"\n', ["setting horizon_days:", "must be a whole number", 'got "90"']),
    ("horizon_days = 1.0\n", ["setting horizon_days:", "no decimal point", "got 1.0"]),
    ("n_train_cutoffs = 1e3\n", ["setting n_train_cutoffs:", "must be a whole number", "got 1000.0"]),
    ("horizon_days = 100000\n", ["setting horizon_days:", "less than or equal to 3650"]),
    ('currency = "XYZ"\n', ["setting currency:", "'XYZ' is not an ISO 4217 currency code"]),
    ('currency = "XTS"\n', ["setting currency:", "'XTS' is not an ISO 4217 currency code"]),
    ('timezone = "localtime"\n', ["setting timezone:", "unknown time zone 'localtime'"]),
    ('timezone = "posixrules"\n', ["setting timezone:", "unknown time zone 'posixrules'"]),
    ('activity_types = "purchase"\n', ["setting activity_types:", "a list of texts"]),
    ('[model]\nfeatures = "recency_days"\n', ["setting model.features:", "a list of texts", 'got "recency_days"']),
    ('[model]\nmax_depth = "4"\n', ["setting model.max_depth:", "must be a number", 'got "4"']),
    ('currency = "gbp"\n', ["setting currency:", "'gbp' is not an ISO 4217 currency code"]),
    ('drift_action = "block"\n', ["setting drift_action:", "'warn' or 'refuse'"]),
    ('contacted_in_training = "drop"\n', ["setting contacted_in_training:", "exclude|keep", "'drop'"]),
    ("max_depth = 4\n", ["unknown setting 'max_depth'", "model parameter", "[model] section"]),
    (b"\xef\xbb\xbfseed = -1\n", ["setting seed:", "greater than or equal to 0"]),  # a BOM is skipped, as in CSV
], ids=["syntax_error", "unknown_key", "bad_value", "not_utf8", "model_table", "settle_inf", "incomplete_nan",
        "settle_huge", "future_tolerance_negative", "seed_negative", "watch_interval_zero",
        "generate_customers_negative", "drift_threshold_inf", "seed_bool", "horizon_text", "horizon_float",
        "cutoffs_exponent", "horizon_huge", "currency_unknown", "currency_test_code", "timezone_localtime",
        "timezone_posixrules", "activity_types_text", "model_features_text", "model_number_text",
        "currency_lowercase", "drift_action_unknown", "contacted_in_training_unknown", "model_key_outside_model", "bom_then_bad_value"])
def test_a_wrong_settings_file_is_one_line(cli, tmp_path, toml, needles):
    Path("churn.toml").write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    home = tmp_path / "home"
    assert_one_error_line(*cli("--home", str(home), "score"), *needles)
    assert not home.exists()


def test_an_event_type_given_twice_counts_once_and_environment_text_is_still_read(monkeypatch):
    from churn.settings import Settings

    monkeypatch.setenv("CHURN_HORIZON_DAYS", "60")  # environment variables are text: converted, not refused
    s = Settings(home="x", activity_types=["purchase", "visit", "purchase"])
    assert s.activity_types == ["purchase", "visit"] and s.horizon_days == 60


FLAG_CASES = [
    (["winback", "--top", "0"], ["--top", "at least 1"]),
    (["winback", "--top", "-5"], ["--top", "at least 1", "'-5'"]),
    (["train", "--horizon-days", "-30"], ["--horizon-days", "between 1 and 3650"]),
    (["train", "--horizon-days", "100000"], ["--horizon-days", "between 1 and 3650", "'100000'"]),
    (["train", "--horizon-days", "0"], ["--horizon-days", "between 1 and"]),
    (["train", "--as-of", "last tuesday"], ["--as-of", "not a date"]),
    (["train", "--set", "max_depht=4"], ["--set", "unknown model setting 'max_depht'", "did you mean 'max_depth'"]),
    (["train", "--set", "max_depth=4.5"], ["--set", "max_depth: must be a whole number between 1 and 64", "'4.5'"]),
    (["train", "--set", "subsample=1.5"], ["--set", "subsample", "between", "and 1"]),
    (["train", "--set", "n_estimators=10000000000000"], ["--set", "n_estimators: must be a whole number between 1 and 100000"]),
    (["train", "--set", "max_depth"], ["--set 'max_depth'", "expected KEY=VALUE"]),
    (["train", "--set", "features=recency"], ["--set", "features: ['recency'] not among the features"]),
    (["score", "--as-of", "2024-13-01"], ["--as-of", "not a date"]),
    (["winback", "--as-of", "2024-02-30"], ["--as-of", "not a date", "YYYY-MM-DD"]),
    (["ingest", "--timezone", "Europe/Lndon"], ["--timezone", "unknown time zone", "IANA"]),
    (["generate", "--customers", "0"], ["--customers", "between 1 and"]),
    (["generate", "--start", "01/02/2023"], ["--start", "not a date"]),
    (["generate", "--seed", "-1"], ["--seed", "between 0 and"]),
    (["generate", "--seed", "4294967296"], ["--seed", "between 0 and 2147483647"]),
    (["demo", "--customers", "-1"], ["--customers", "at least 1"]),
    (["bench", "--exact-top-n", "-1", "--sizes", "0"], ["--exact-top-n", "at least 0"]),  # never a real bench
    (["services", "restart"], ["invalid choice: 'restart'"]),
    (["scroe"], ["invalid choice: 'scroe'"]),
    (["winback", "--bogus"], ["churn winback: unrecognized arguments: --bogus", "churn winback --help"]),
]


@pytest.mark.parametrize("argv, needles", FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_a_wrong_flag_is_one_line_naming_it_and_what_is_allowed(cli, tmp_path, argv, needles):
    home = tmp_path / "home"
    assert_one_error_line(*cli("--home", str(home), *argv), *needles)
    assert not home.exists()


# ------------------------------------------------------------------ 2 and 3. missing inputs, every command

def _no_store(home):
    pass


def _store(home):
    tiny_store(home, ["2024-01-05", "2024-01-20"])


def _scores(home):
    fake_scores(home, "2024-05-01")
    fake_scores(home, "2024-05-08")


def _champion_without_files(home):
    """A store, and a registry whose champion's model files are gone (an artifact folder deleted or moved)."""
    from mlflow import MlflowClient

    _store(home)
    (home / "mlflow").mkdir()
    db = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=db, registry_uri=db)
    client.create_registered_model("churn")
    gone = home / "mlflow" / "artifacts" / "models" / "m-gone" / "artifacts"
    client.set_registered_model_alias("churn", "champion", client.create_model_version("churn", gone.as_uri()).version)


def _scores_one_interrupted(home):
    _scores(home)
    fake_scores(home, "2024-05-15", complete=False)


def _only_interrupted_scores(home):
    fake_scores(home, "2024-05-15", complete=False)


def _scores_and_contacts(home, header="customer,when"):
    _scores(home)
    (home / "contacts.csv").write_text(f"{header}\nc1,2024-05-01\n")


def _scores_and_landing(home):
    _scores(home)
    _landing_empty(home)


def _landing_with_txt(home):
    (home / "landing").mkdir(parents=True)
    (home / "landing" / "orders.txt").write_text("customer_id,event_type,event_time\n")


def _landing_empty(home):
    (home / "landing").mkdir(parents=True)


def _mapping(text: str | bytes):
    """A setup: a good CSV and the mapping file `text` in the home folder."""
    def setup(home):
        home.mkdir(parents=True)
        (home / "ok.csv").write_text("event_id,customer_id,event_type,event_time\ne1,c1,visit,2024-03-01T10:00:00Z\n")
        (home / "m.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def _fifo(home):
    home.mkdir(parents=True)
    os.mkfifo(home / "pipe.csv")


MAPPING_ARGS = ["ingest", "--mapping", "{home}/m.toml", "{home}/ok.csv"]

MISSING_INPUTS = {
    "ingest_mapping_not_utf8": (MAPPING_ARGS, _mapping(b"[columns]\ncustomer_id = \"\xff\xfe\"\n"),
                                ["mapping", "m.toml", "not UTF-8"], {}),
    "ingest_mapping_bad_time_directive": (MAPPING_ARGS, _mapping('[time]\nformat = "%Q %d"\n'),
                                          ["mapping", "[time] format", "'Q' is a bad directive"], {}),
    "ingest_mapping_column_not_a_string": (MAPPING_ARGS, _mapping("[columns]\ncustomer_id = 5\n"),
                                           ["mapping", "[columns] customer_id must be a source column name"], {}),
    "ingest_mapping_column_empty": (MAPPING_ARGS, _mapping('[columns]\ncustomer_id = " "\n'),
                                    ["mapping", "[columns] customer_id must be a source column name"], {}),
    "ingest_mapping_constant_event_id": (MAPPING_ARGS, _mapping('[constants]\nevent_id = "batch-2024-03"\n'),
                                         ["mapping", "[constants] event_id", "one event"], {}),
    "ingest_mapping_column_and_constant": (MAPPING_ARGS,
                                           _mapping('[columns]\nchannel = "c"\n[constants]\nchannel = "web"\n'),
                                           ["mapping", "both in [columns] and [constants]", "channel"], {}),
    "ingest_mapping_unknown_event_type_value": (MAPPING_ARGS, _mapping('[values.event_type]\nKAUF = "buy"\n'),
                                                ["mapping", "[values.event_type]", "'buy'", "purchase"], {}),
    "ingest_mapping_unknown_event_type_constant": (MAPPING_ARGS, _mapping('[constants]\nevent_type = "shopping"\n'),
                                                   ["mapping", "[constants] event_type", "'shopping'", "purchase"],
                                                   {}),
    "ingest_a_fifo": (["ingest", "{home}/pipe.csv"], _fifo, ["not a regular file", "pipe.csv"], {}),
    "ingest_dev_null": (["ingest", "/dev/null"], _no_store, ["not a regular file", "/dev/null"], {}),
    # command line, setup, what the error line must say, environment ("champion": the registry has one)
    "train_no_store": (["train"], _no_store, ["event store", "is empty", "churn generate"], {}),
    "train_as_of_before_data": (["train", "--as-of", "2023-01-01"], _store,
                                ["not enough history", "the store starts 2024-01-05"], {}),
    "train_not_enough_history": (["train"], _store, ["not enough history", "at least"], {}),
    "score_no_store_no_champion": (["score"], _no_store, ["no model has the alias 'champion'"], {}),
    "score_no_store": (["score"], _no_store, ["event store", "is empty"], {"champion": True}),
    "score_as_of_before_data": (["score", "--as-of", "2023-06-01"], _store,
                                ["before the first stored event", "2024-01-05 to 2024-01-20"], {"champion": True}),
    "score_no_champion": (["score"], _store, ["no model has the alias 'champion'", "churn train"], {}),
    "score_champion_files_missing": (["score"], _champion_without_files,
                                     ["champion model churn v1 has no model files at", "m-gone/artifacts",
                                      "the nearest existing folder is", "/mlflow", "churn train"], {}),
    "train_as_of_after_data": (["train", "--as-of", "2025-06-01"], _store,
                               ["after the last stored event (2024-01-20)", "--as-of up to 2024-01-21"], {}),
    "score_as_of_after_data": (["score", "--as-of", "2024-03-01"], _store,
                               ["after the last stored event (2024-01-20)", "ingest the newer events"],
                               {"champion": True}),
    "ingest_unsupported_type": (["ingest", "{home}/landing/orders.txt"], _landing_with_txt,
                                ["unsupported file type", "orders.txt", ".parquet"], {}),
    "ingest_a_folder": (["ingest", "{home}/landing"], _landing_empty, ["a folder, not a file", "landing/*.csv"], {}),
    "winback_no_scores": (["winback"], _no_store, ["no scores", "churn score"], {}),
    "winback_day_without_scores": (["winback", "--as-of", "2024-05-02"], _scores,
                                   ["no scores for 2024-05-02", "scored days: 2024-05-01, 2024-05-08"], {}),
    "winback_day_with_interrupted_scores": (["winback", "--as-of", "2024-05-15"], _scores_one_interrupted,
                                            ["scores for 2024-05-15", "not complete", "no readable _SUCCESS",
                                             "churn score --as-of 2024-05-15", "complete days: 2024-05-01, 2024-05-08"],
                                            {}),
    "winback_only_interrupted_scores": (["winback"], _only_interrupted_scores,
                                        ["scores for 2024-05-15", "not complete", "churn score --as-of 2024-05-15"],
                                        {}),
    "winback_pseudonymise_no_key": (["winback", "--pseudonymise"], _scores,
                                    ["CHURN_PSEUDONYM_KEY", "at least 16 characters"], {}),
    "winback_pseudonymise_short_key": (["winback", "--pseudonymise"], _scores,
                                       ["CHURN_PSEUDONYM_KEY", "at least 16 characters", "it has 6"],
                                       {"CHURN_PSEUDONYM_KEY": "abcdef"}),
    "winback_contacts_missing": (["winback", "--contacts", "{home}/nope.csv"], _scores,
                                 ["contact history", "nope.csv", "no such file"], {}),
    "winback_contacts_lacking_columns": (["winback", "--contacts", "{home}/contacts.csv"], _scores_and_contacts,
                                         ["contact history", "lacks columns ['customer_id', 'contacted_at']",
                                          "'customer', 'when'"], {}),
    "ingest_no_landing": (["ingest"], _no_store, ["nothing to ingest", "does not exist"], {}),
    "ingest_landing_empty": (["ingest"], _landing_empty, ["nothing to ingest", "landing"], {}),
    "ingest_file_missing": (["ingest", "{home}/nope.csv"], _no_store, ["no such file", "nope.csv"], {}),
    "ingest_mapping_missing": (["ingest", "--mapping", "{home}/nope.toml"], _no_store,
                               ["mapping", "nope.toml", "No such file"], {}),
    "serve_without_a_prefect_server": (["serve"], _no_store, ["needs a Prefect server", "churn services up"], {}),
    "serve_with_a_bad_schedule": (["serve"], _no_store, ["winback_cron = 'every morning'", "not a cron schedule"],
                                  {"CHURN_WINBACK_CRON": "every morning"}),
    "bench_out_in_a_missing_folder": (["bench", "--sizes", "1K", "--out", "{home}/no/such/BENCH.md"], _no_store,
                                      ["--out", "does not exist"], {}),
    "bench_out_is_a_folder": (["bench", "--sizes", "1K", "--out", "{home}"], _landing_empty,
                              ["--out", "a folder", "BENCHMARKS.md"], {}),
    "bench_root_is_a_file": (["bench", "--sizes", "1K", "--root", "{home}/contacts.csv"], _scores_and_contacts,
                             ["--root", "contacts.csv", "a file"], {}),
    "winback_contacts_a_folder": (["winback", "--contacts", "{home}/landing"], _scores_and_landing,
                                  ["contact history", "landing", "a folder, not a file"], {}),
    "bench_bad_size": (["bench", "--sizes", "1M,lots"], _no_store, ["'lots' is not a size"], {}),
    "bench_unknown_engine": (["bench", "--sizes", "1K", "--engine", "spark,dask"], _no_store,
                             ["--engine 'dask'", "allowed: duckdb, spark"], {}),
    "contacts_file_missing": (["contacts", "ingest", "{home}/nope.csv"], _no_store, ["no such file", "nope.csv"], {}),
    "contacts_a_folder": (["contacts", "ingest", "{home}/landing"], _landing_empty,
                          ["a folder, not a file", "landing/contacts"], {}),
    "contacts_unsupported_type": (["contacts", "ingest", "{home}/landing/orders.txt"], _landing_with_txt,
                                  ["unsupported file type", "orders.txt"], {}),
    "contacts_nothing_to_ingest": (["contacts", "ingest"], _landing_empty,
                                   ["nothing to ingest", "landing/contacts", "does not exist"], {}),
    "evaluate_no_scores": (["evaluate"], _store, ["no scores", "churn score"], {}),
    "evaluate_no_store": (["evaluate"], _scores, ["event store", "is empty"], {}),
}


@pytest.mark.parametrize("case", list(MISSING_INPUTS))
def test_a_missing_input_is_one_line_before_anything_is_written(cli, tmp_path, monkeypatch, capsys, case):
    argv, setup, needles, env = MISSING_INPUTS[case]
    home = tmp_path / "home"
    setup(home)
    capsys.readouterr()  # what a setup printed (MLflow creating its tables) is not the command's output
    for k, v in env.items():
        if k == "champion":  # checked first, and tested on its own: stand in for a registry that has one
            monkeypatch.setattr("storage.tracking.require_champion", lambda uri, name: None)
        else:
            monkeypatch.setenv(k, v)
    before = tree(home)
    assert_one_error_line(*cli("--home", str(home), *[a.format(home=home) for a in argv]), *needles)
    assert tree(home) == before  # nothing written, not even Prefect's folder: no flow started


def _run_churn(home: Path, *argv: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "PREFECT_"))}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whatever the environment has installed
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "churn.cli", "--home", str(home), *argv], capture_output=True,
                          text=True, env=env, cwd=home.parent, timeout=300)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("command", ["winback", "score"])
def test_the_real_command_fails_fast_with_one_line_and_never_starts_prefect(tmp_path, command):
    """`winback` before any scores, `score` without a champion: the check comes before Prefect's start-up."""
    home = tmp_path / "home"
    if command == "score":
        tiny_store(home, ["2024-01-05", "2024-01-20"])
    before = tree(home)
    proc, seconds = _run_churn(home, command)
    assert_one_error_line(proc.returncode, proc.stderr, "run `churn train` first" if command == "score"
                          else "run `churn score` first")
    assert proc.stdout == ""
    assert tree(home) == before
    print(f"{command}: error after {seconds:.2f} s")


# ------------------------------------------------------------------ never retried

def test_errors_that_need_a_person_are_never_retried():
    from churn.errors import UserError
    from churn.settings import PseudonymKeyError
    from models.snapshots import NotEnoughHistory
    from models.winback import WeakKey
    from storage.catalog import ContactsError, NoScores
    from storage.layout import PathOutside
    from storage.store import EmptyStore, OutsideStore
    from storage.tracking import ChampionUnreadable, NoChampionError, TrackingUnavailable, retry_transient

    class Failed:
        def __init__(self, e):
            self.e = e

        def result(self):
            raise self.e

    for e in (NoChampionError("x"), ChampionUnreadable("x"), PathOutside("x"), NoScores("x"), EmptyStore("x"), OutsideStore("x"),
              NotEnoughHistory("x"), PseudonymKeyError("x"), WeakKey("x"), ContactsError("x")):
        assert isinstance(e, UserError)
        assert retry_transient(None, None, Failed(e)) is False, type(e).__name__
    assert retry_transient(None, None, Failed(TrackingUnavailable("server restarting"))) is True


def test_every_retried_task_retries_only_transient_errors():
    from flows import ingest, score, train, winback
    from storage.tracking import retry_transient

    tasks = [obj for mod in (ingest, score, train, winback) for obj in vars(mod).values()
             if type(obj).__name__ == "Task"]
    assert len(tasks) >= 5
    for t in tasks:
        if t.retries:
            assert t.retry_condition_fn is retry_transient, t.name


def test_services_status_and_down_write_nothing(cli, tmp_path):
    home = tmp_path / "home"
    assert cli("--home", str(home), "services", "status")[0] == 3
    assert cli("--home", str(home), "services", "down")[0] == 0
    assert not home.exists()


def test_another_program_at_the_tracking_uri_is_one_line_not_no_champion(cli, tmp_path, monkeypatch):
    """A web server that is not MLflow answers 404 for the registry: that is an error, never "no champion"
    (which would let any new model become champion)."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        home = tmp_path / "home"
        tiny_store(home, ["2024-01-05", "2024-01-20"])
        monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
        line = assert_one_error_line(*cli("--home", str(home), "score"), "did not answer like an MLflow registry",
                                     "ENDPOINT_NOT_FOUND")
        assert "no model has the alias" not in line
    finally:
        server.shutdown()


def test_version_and_home_after_the_subcommand(cli, tmp_path, capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"churn {version('churn')}"
    home = tmp_path / "after"
    line = assert_one_error_line(*cli("winback", "--home", str(home)), "no scores")
    assert str(home) in line  # the subcommand's --home is the one used
    inner = tmp_path / "inner"
    line = assert_one_error_line(*cli("--home", str(tmp_path / "outer"), "winback", "--home", str(inner)), "no scores")
    assert str(inner) in line


def test_a_reader_that_stops_reading_gets_no_traceback(tmp_path):
    """`churn explain C1 | head -3`: the pipe closes before churn has printed everything; Python's
    BrokenPipeError traceback is not an error of the user's (nor ours): churn ends quietly, as a shell
    reports a program ended by SIGPIPE (141)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "churn.cli", "--home", str(tmp_path / "home"), "services", "status"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # closed before the child writes a line
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("home", ["a-file", "a-file/below", ""])
def test_a_data_folder_that_cannot_be_one_is_one_line(cli, tmp_path, home):
    (tmp_path / "a-file").write_text("not a folder")
    path = str(tmp_path / home) if home else ""
    out = cli("ingest", "--home", path, str(tmp_path / "a-file"))
    assert_one_error_line(*out, *(["--home", "empty"] if not home else ["a-file"]))
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_a_link_out_of_the_data_folder_is_refused_before_anything_is_written(cli, tmp_path):
    """`rejected/` (or any entry of the data folder) linked to a folder outside it: files would be moved there."""
    home, outside = tmp_path / "home", tmp_path / "outside"
    (home / "landing").mkdir(parents=True)
    outside.mkdir()
    (home / "rejected").symlink_to(outside)
    (home / "landing" / "bad.parquet").write_bytes(b"PAR1garbage")
    assert_one_error_line(*cli("--home", str(home), "ingest"), "rejected is a symbolic link", "outside the data folder")
    assert list(outside.iterdir()) == [] and (home / "landing" / "bad.parquet").exists()
