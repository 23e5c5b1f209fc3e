"""Scoring and win-back against a trained champion in a real (SQLite) MLflow registry."""

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from expectations.scores import SCORE_SCHEMA
from storage import catalog, layout
from storage.tracking import NoChampionError
from tests.conftest import config

NOW = pd.Timestamp("2025-06-01T00:00Z")


def uri(paths):
    return f"sqlite:///{paths.mlflow / 'mlflow.db'}"


def run_score(paths, as_of=None, **policy):
    from flows.score import score

    return score(config(paths, "score", **policy), as_of, now=NOW)


def test_scoring_without_a_champion_is_a_clear_error_and_publishes_nothing(small_store, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(small_store.home, home, ignore=shutil.ignore_patterns("mlflow"))
    paths = layout.Paths(home)
    with pytest.raises(NoChampionError, match="no model has the alias 'champion'.*churn train"):
        run_score(paths)
    assert not (home / "scores").exists()


def test_scores_are_readable_by_pyarrow_and_duckdb_with_the_contract_schema(trained):
    r = run_score(trained, exact_reasons_top_n=200)
    table = pq.read_table(r["path"])
    assert table.schema.equals(SCORE_SCHEMA, check_metadata=False)
    assert table.schema.metadata[b"schema_version"] == b"2"
    con = duckdb.connect()
    row = con.execute(f"""
        SELECT count(*), count(DISTINCT customer_id), min(churn_probability), max(churn_probability),
               min(risk_rank), max(risk_rank), bool_and(value_at_risk >= 0), epoch_us(any_value(as_of_time)),
               typeof(any_value(scored_at)), count(*) FILTER (WHERE reasons_method = 'exact')
        FROM read_parquet('{r["path"]}')""").fetchone()
    n = r["customers"]
    assert row[0] == row[1] == n and n > 500
    assert 0 <= row[2] <= row[3] <= 1 and (row[4], row[5]) == (1, n) and row[6]
    assert pd.Timestamp(row[7], unit="us", tz="UTC").date().isoformat() == r["as_of"]
    assert row[8] == "TIMESTAMP WITH TIME ZONE" and row[9] == 200
    assert set(pd.read_parquet(r["path"])["risk_tier"]) <= {"high", "medium", "low"}
    assert sum(t["customers"] for t in r["tiers"].values()) == n
    # the churn-time curve of the same training run: every customer, never rising with the days, its median
    # where the curve crosses one half, the date as_of + median (empty beyond two years)
    s = pd.read_parquet(r["path"])
    curve = s[[f"p_no_purchase_{h}d" for h in (30, 60, 90, 180)]].to_numpy()
    assert not np.isnan(curve).any() and ((curve >= 0) & (curve <= 1)).all() and (np.diff(curve, axis=1) < 0).all()
    median = s["median_days_to_next_purchase"]
    assert ((median > 30) == (s["p_no_purchase_30d"] > 0.5)).all() and ((median > 90) == (curve[:, 2] > 0.5)).all()
    near = median <= 730
    when = s["as_of_time"] + pd.to_timedelta(median, unit="D")  # the cutoff instant, not the day's midnight
    assert (s.loc[near, "expected_next_purchase_date"] == when[near].dt.date).all() and near.any()
    assert s.loc[~near, "expected_next_purchase_date"].isna().all()
    # the curve ranks like the churn model: P(no purchase within 90 days) agrees with churn_probability in rank
    assert s["p_no_purchase_90d"].corr(s["churn_probability"], method="spearman") > 0.5


def test_rescoring_a_date_replaces_its_partition(trained):
    first = run_score(trained, as_of=pd.Timestamp("2024-05-01T00:00Z"))
    second = run_score(trained, as_of=pd.Timestamp("2024-05-01T00:00Z"))
    assert first["path"] == second["path"]
    folder = trained.home / "scores" / "as_of=2024-05-01"
    assert sorted(f.name for f in folder.iterdir()) == ["_SUCCESS", "scores.parquet"]
    record = json.loads((folder / "_SUCCESS").read_text())
    assert record["sha256"] == second["sha256"]
    from storage import store  # the event table's version the features were built from is recorded with the day

    assert record["store_version"] == store.store_version(trained) is not None
    df = pd.read_parquet(folder / "scores.parquet")
    assert df["customer_id"].is_unique and len(df) == second["customers"]


def test_winback_list_is_consistent_with_the_scores(trained, tmp_path):
    from flows.winback import winback

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    scores, _ = catalog.read_scores(trained, "2024-06-01")
    contacts = tmp_path / "contacts.csv"
    top_high = scores[scores["risk_tier"] == "high"].sort_values("value_at_risk").iloc[-1]
    # padded as a CRM export might: read by the rule ingest stores ids by, so the cooldown still finds it
    contacts.write_text(f"customer_id,contacted_at\n  {top_high['customer_id']}\u00a0,2024-05-25T10:00:00Z\n")
    r = winback(config(trained, "winback", max_inactive_days=180), "2024-06-01", contacts)
    w = pd.read_parquet(r["parquet"])
    s = scores.set_index("customer_id")
    assert len(w) == r["customers"] + r["control"] and r["customers"] > 0 and r["control"] > 0
    assert top_high["customer_id"] not in set(w["customer_id"])
    assert (s.loc[w["customer_id"], "risk_tier"] == "high").all()
    assert (s.loc[w["customer_id"], "days_since_last_event"] <= 180).all()
    assert w["value_at_risk"].tolist() == s.loc[w["customer_id"], "value_at_risk"].tolist()
    assert w["value_at_risk"].is_monotonic_decreasing
    reachable = s[(s["risk_tier"] == "high") & (s["days_since_last_event"] <= 180)]
    eligible = reachable[reachable["value_at_risk"] > 0]
    assert len(w) == len(eligible) - 1
    # every step of the selection is reported with its count
    assert [(x["step"], x["customers"]) for x in r["steps"]] == [
        ("scored", len(s)), ("tier", (s["risk_tier"] == "high").sum()), ("inactive", len(reachable)),
        ("value", len(eligible)), ("cooldown", len(w))]
    assert r["selection"].startswith(f"{len(s):,} scored -> ") and r["selection"].endswith(
        f"-> {len(w):,} after the 30-day cooldown")
    csv = pd.read_csv(r["csv"], dtype={"Customer ID": str})
    assert list(csv.columns) == ["Rank", "Customer ID", "Risk score (0-100)", "Risk tier", "Value at risk (GBP)",
                                 "Days since last purchase", "Suggested action", "Reason 1", "Reason 2", "Reason 3"]
    # the CSV is the target group only (never a control customer), ranked 1.. for contact
    target = w[w["group"] == "target"]
    assert csv["Customer ID"].tolist() == target["customer_id"].tolist()
    assert not set(csv["Customer ID"]) & set(w.loc[w["group"] == "control", "customer_id"])
    assert csv["Rank"].tolist() == list(range(1, len(target) + 1)) == target["contact_rank"].tolist()
    assert csv["Value at risk (GBP)"].tolist() == target["value_at_risk"].round(2).tolist()
    import re

    cells = [line.split(",")[4] for line in Path(r["csv"]).read_text().splitlines()[1:]]
    assert all(re.fullmatch(r"\d+\.\d\d", c) for c in cells), cells[:5]  # amounts with their cents
    # the campaign ledger records the list: id, sizes, settings, model
    ledger = catalog.read_ledger(trained)
    assert ledger[-1]["list_id"] == "winback-2024-06-01" == w["list_id"].iloc[0]
    assert (ledger[-1]["target"], ledger[-1]["control"]) == (len(target), r["control"])
    assert ledger[-1]["control_share"] == 0.1 and ledger[-1]["contact_history"] == str(contacts)
    assert csv["Risk score (0-100)"].between(0, 100).all() and csv["Reason 1"].notna().all()
    # a complaint among any of the three reasons gets the service call, whatever comes first
    complained = w[["reason_1_category", "reason_2_category", "reason_3_category"]].eq("complaints").any(axis=1)
    assert complained.any() and (w.loc[complained, "action_category"] == "complaints").all()
    assert (w["action_category"] == "complaints").sum() == complained.sum()


def test_churn_winback_prints_each_selection_step_with_its_count(trained, capsys):
    from churn.cli import _print_winback
    from flows.winback import winback

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    r = winback(config(trained, "winback"), "2024-06-01")
    _print_winback(r)
    out = capsys.readouterr().out
    assert f"selection: {r['selection']}" in out and "in the high tier -> " in out and "inactivity limit -> " in out
    assert "after the 30-day cooldown (no contact history given)" in out


def test_the_cooldown_reads_the_stored_contacts_and_a_contacts_file_beside_them(trained, tmp_path):
    """Issue #15: contacts recorded with `churn contacts ingest` keep a customer off the next list."""
    from flows.contacts import ingest_contacts_file
    from flows.winback import winback

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    home = tmp_path / "home"  # a private copy: stored contacts would change the other tests' lists
    shutil.copytree(trained.home, home, ignore=shutil.ignore_patterns("mlflow", "prefect"))
    paths = layout.Paths(home)
    scores, _ = catalog.read_scores(paths, "2024-06-01")
    eligible = scores[(scores["risk_tier"] == "high") & (scores["days_since_last_event"] <= 180)
                      & (scores["value_at_risk"] > 0)].sort_values("value_at_risk", ascending=False)
    first, second, old = eligible["customer_id"].iloc[:3]
    crm = tmp_path / "crm.csv"  # contacted 10 days ago (inside the 30-day cooldown) and 60 days ago (outside)
    crm.write_text(f"customer_id,contacted_at,action\n {first} ,2024-05-22T10:00:00Z,service call\n"
                   f"{old},2024-04-02T10:00:00Z,reminder\n")
    r = ingest_contacts_file(config(paths, "ingest"), crm, now=NOW)
    assert r["stored"] == 2
    w = winback(config(paths, "winback"), "2024-06-01")
    listed = set(pd.read_parquet(w["parquet"])["customer_id"])
    assert first not in listed and {second, old} <= listed
    assert w["selection"].endswith(f"-> {len(eligible) - 1:,} after the 30-day cooldown")
    # a --contacts file still counts, beside the stored contacts
    extra = tmp_path / "extra.csv"
    extra.write_text(f"customer_id,contacted_at\n{second},2024-05-30\n")
    w2 = winback(config(paths, "winback"), "2024-06-01", extra)
    listed2 = set(pd.read_parquet(w2["parquet"])["customer_id"])
    assert not {first, second} & listed2 and old in listed2
    assert catalog.read_ledger(paths)[-1]["contacts_considered"] == 3


def test_a_top_n_list_is_written_beside_the_days_full_list_and_never_replaces_it(trained):
    """Issue #14: `churn winback --top 10` silently replaced the day's full list."""
    from flows.winback import winback

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    full = winback(config(trained, "winback"), "2024-06-01")
    before = pd.read_parquet(full["parquet"])
    top = winback(config(trained, "winback", top_n=10), "2024-06-01")
    assert top["csv"].endswith("winback-top10.csv") and top["parquet"].endswith("winback-top10.parquet")
    assert full["csv"].endswith("/winback.csv") and len(pd.read_parquet(top["parquet"])) == 10
    pd.testing.assert_frame_equal(pd.read_parquet(full["parquet"]), before)  # the full list is still there
    assert len(pd.read_csv(full["csv"])) == (before["group"] == "target").sum() > 10
    again = winback(config(trained, "winback"), "2024-06-01")  # and re-writing the full list keeps the top 10
    assert again["parquet"] == full["parquet"] and len(pd.read_parquet(top["parquet"])) == 10
    folder = trained.home / "winback" / "as_of=2024-06-01"
    assert {p.name for p in folder.iterdir()} >= {"winback.csv", "winback.parquet", "winback-top10.csv",
                                                  "winback-top10.parquet"}


def test_score_and_winback_flows_run_under_prefect(trained):
    from flows.score import score_flow
    from flows.winback import winback_flow

    r = score_flow(config(trained, "score", exact_reasons_top_n=50), as_of="2024-07-01")
    assert r["exact_reasons"] == 50 and r["as_of"] == "2024-07-01"
    w = winback_flow(config(trained, "winback", top_n=25), as_of="2024-07-01")
    assert w["customers"] + w["control"] == 25 and w["customers"] >= 20  # the top 25, with its hold-out
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=uri(trained)).get_run(r["run_id"])
    assert run.data.tags["kind"] == "scoring" and run.data.metrics["customers_scored"] == r["customers"]


@pytest.fixture
def broken_registry(trained, tmp_path):
    """A private copy of the trained home whose registry we may break."""
    home = tmp_path / "home"
    shutil.copytree(trained.home, home, ignore=shutil.ignore_patterns("scores", "winback"))
    import mlflow

    mlflow.set_tracking_uri(uri(layout.Paths(home)))
    mlflow.set_registry_uri(uri(layout.Paths(home)))
    return layout.Paths(home)


def test_a_champion_with_other_features_is_refused_and_nothing_is_published(broken_registry):
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from xgboost import XGBClassifier

    X = pd.DataFrame({"foo": np.arange(20.0), "bar": np.arange(20.0) % 3})
    model = XGBClassifier(n_estimators=2).fit(X, np.arange(20) % 2)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(model, name="model", registered_model_name="churn")
    MlflowClient().set_registered_model_alias("churn", "champion", info.registered_model_version)
    with pytest.raises(RuntimeError, match=r"expects features \['foo', 'bar'\].*retrain"):
        run_score(broken_registry)
    assert not (broken_registry.home / "scores").exists()


def test_a_champion_trained_before_the_curve_existed_scores_with_the_curve_columns_empty(broken_registry):
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    model = mlflow.xgboost.load_model("models:/churn@champion")
    with mlflow.start_run():  # the same model in a run that logged no curve, as older training runs did
        info = mlflow.xgboost.log_model(model, name="model", registered_model_name="churn")
    client.set_registered_model_alias("churn", "champion", info.registered_model_version)
    r = run_score(broken_registry)
    s = pd.read_parquet(r["path"])
    assert len(s) == r["customers"] > 0 and s["churn_probability"].notna().all()
    assert s[[c for c in s.columns if c.startswith("p_no_purchase_")]].isna().all().all()
    assert s[["median_days_to_next_purchase", "expected_next_purchase_date"]].isna().all().all()


def test_scoring_warns_when_the_champion_counted_other_activity_than_the_settings(broken_registry, caplog):
    from mlflow import MlflowClient

    client = MlflowClient()
    mv = client.get_model_version_by_alias("churn", "champion")
    assert mv.tags["activity_types"] == "purchase"
    with caplog.at_level("WARNING"):
        run_score(broken_registry)
    assert "activity_types" not in caplog.text  # the same as the settings: nothing to say
    client.set_model_version_tag("churn", mv.version, "activity_types", "purchase,visit")
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_score(broken_registry)
    assert "trained with activity_types = purchase,visit (the setting is now purchase)" in caplog.text


def test_an_unreadable_champion_artifact_is_a_clear_error_and_nothing_is_published(broken_registry, tmp_path):
    from mlflow import MlflowClient

    junk = tmp_path / "junk-model"
    junk.mkdir()
    (junk / "MLmodel").write_text("this is not a model\n")
    client = MlflowClient()
    mv = client.create_model_version("churn", source=junk.as_uri())
    client.set_registered_model_alias("churn", "champion", mv.version)
    with pytest.raises(RuntimeError, match=f"champion model churn v{mv.version} cannot be loaded"):
        run_score(broken_registry)
    assert not (broken_registry.home / "scores").exists()


def test_pseudonymised_winback_hides_ids_with_a_keyed_hash(trained, monkeypatch):
    from flows.winback import winback

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    plain = pd.read_parquet(winback(config(trained, "winback", top_n=10), "2024-06-01", None)["parquet"])
    monkeypatch.delenv("CHURN_PSEUDONYM_KEY", raising=False)
    with pytest.raises(RuntimeError, match="CHURN_PSEUDONYM_KEY"):
        winback(config(trained, "winback", top_n=10), "2024-06-01", None, pseudonymised=True)
    monkeypatch.setenv("CHURN_PSEUDONYM_KEY", "k" * 32)
    r = winback(config(trained, "winback", top_n=10), "2024-06-01", None, pseudonymised=True)
    hidden = pd.read_parquet(r["parquet"])
    assert hidden["customer_id"].str.match(r"^p_[0-9a-f]{24}$").all()
    assert not set(hidden["customer_id"]) & set(plain["customer_id"])
    assert hidden["value_at_risk"].tolist() == plain["value_at_risk"].tolist()
    assert "k" * 32 not in open(r["csv"]).read()
    again = pd.read_parquet(winback(config(trained, "winback", top_n=10), "2024-06-01", None, pseudonymised=True)["parquet"])
    assert again["customer_id"].tolist() == hidden["customer_id"].tolist()  # stable for one key
    assert r["parquet"].endswith("winback-top10-pseudonymised.parquet")  # beside the list with real ids
    assert pd.read_parquet(r["parquet"].replace("-pseudonymised", ""))["customer_id"].tolist() == \
        plain["customer_id"].tolist()


def test_drift_beyond_the_threshold_refuses_to_publish_when_configured(broken_registry):
    from flows.score import DriftRefused, score

    def cfg(**kw):
        return config(broken_registry, "score", **kw)

    ok = score(cfg(), None, now=NOW)
    assert ok["drift"]["checked"] and set(ok["drift"]["psi"]) >= {"churn_probability", "days_since_last_event",
                                                                   "tenure_days", "purchases_total"}
    # generated customers behave the same at training and scoring time: no alarm, although the store is older
    assert not ok["drift"]["drifted"], ok["drift"]
    day = ok["as_of"]
    (broken_registry.home / "scores" / f"as_of={day}" / "scores.parquet").unlink()
    # refused, through the command: one error line and nothing else (no WARNING copy of it, no "nanobind: leaked"
    # lines from DuckDB objects that the failed flow's frames kept alive until exit), nothing published
    import os
    import subprocess
    import sys

    import prefect.settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "PREFECT_"))}
    env.update(CHURN_HOME=str(broken_registry.home), CHURN_DRIFT_ACTION="refuse", CHURN_DRIFT_PSI_THRESHOLD="1e-6",
               PREFECT_API_URL=prefect.settings.PREFECT_API_URL.value())  # the session's server: no start-up here
    r = subprocess.run([str(Path(sys.executable).with_name("churn")), "score"], env=env, capture_output=True,
                       text=True, timeout=300)
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("[")]  # progress lines first
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith("error: drift beyond PSI 1e-06") and "not published" in lines[0]
    with pytest.raises(DriftRefused, match="not published"):  # what the flow raises
        score(cfg(drift_threshold=1e-6, drift_action="refuse"), None, now=NOW)
    assert not (broken_registry.home / "scores" / f"as_of={day}" / "scores.parquet").exists()
    warned = score(cfg(drift_threshold=1e-6, drift_action="warn"), None, now=NOW)
    assert warned["drift"]["drifted"] and (broken_registry.home / "scores" / f"as_of={day}" / "scores.parquet").exists()


def test_churn_runs_lists_the_training_run_with_its_metrics_baseline_and_alias(trained, capsys, caplog):
    import argparse
    import json
    import logging

    caplog.set_level(logging.INFO, logger="churn")

    from churn.cli import cmd_runs
    from churn.settings import defaults

    settings = defaults(trained.home)
    assert cmd_runs(argparse.Namespace(last=5, json=True), settings) == 0
    rows = json.loads(capsys.readouterr().out)
    assert "reading the training runs from MLflow" in caplog.text  # a progress line before MLflow's slow import
    champion = [r for r in rows if "champion" in r["aliases"]]
    assert len(champion) == 1 and champion[0]["status"] == "FINISHED"
    r = champion[0]
    assert 0.5 < r["roc_auc"] <= 1 and 0 < r["pr_auc"] <= 1 and r["horizon_days"] == "90"
    assert r["best_baseline"] in ("recency_rule_90d", "logistic_rfm", "bg_nbd", "pareto_nbd")
    assert 0.5 < r["best_baseline_roc_auc"] < 1
    from storage import store  # the event table's version the run read (nothing was ingested since)

    assert (r["store_version"], r["store_events"]) == (store.store_version(trained), store.store_time_range(trained)[2])
    assert cmd_runs(argparse.Namespace(last=5, json=False), settings) == 0
    table = capsys.readouterr().out
    assert f"v{r['version']} (champion)" in table and f"{r['roc_auc']:.4f}" in table
    empty = defaults(trained.home.parent / "nothing-here")
    assert cmd_runs(argparse.Namespace(last=5, json=False), empty) == 0
    assert "no training runs" in capsys.readouterr().out and not (trained.home.parent / "nothing-here").exists()
    assert r["run_name"].startswith("train ") and " h90d " in r["run_name"]


def test_churn_scores_lists_published_days_and_explain_shows_one_customer(trained, capsys):
    """Issue #14: look-ups a user expects, `churn scores` (published days) and `churn explain CUSTOMER`."""
    import argparse
    import json

    from churn.cli import _days, _percent, cmd_explain, cmd_scores
    from churn.errors import UserError
    from churn.settings import defaults
    from flows.winback import winback

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    listed = pd.read_parquet(winback(config(trained, "winback"), "2024-06-01")["parquet"])
    # the scores' reasons name their currency: a list labelled with another one would mix two in a row
    from models.winback import CurrencyMismatch

    assert catalog.scores_currency(trained, "2024-06-01") == "GBP"
    with pytest.raises(CurrencyMismatch, match="written with currency GBP .* the currency setting is now EUR"):
        winback(config(trained, "winback", currency="EUR"), "2024-06-01")
    settings = defaults(trained.home)
    (trained.scores / "as_of=2024-06-02").mkdir(exist_ok=True)  # a write that never finished: no _SUCCESS
    (trained.scores / "as_of=2024-06-02" / "scores.parquet").write_bytes(b"PAR1")
    assert cmd_scores(argparse.Namespace(json=True), settings) == 0
    days = {d["as_of"]: d for d in json.loads(capsys.readouterr().out)}
    day = days["2024-06-01"]
    scores = pd.read_parquet(trained.scores / "as_of=2024-06-01" / "scores.parquet")
    assert day["complete"] and day["rows"] == len(scores) and sum(day["tiers"].values()) == len(scores)
    assert day["tiers"]["high"] == (scores["risk_tier"] == "high").sum()
    assert days["2024-06-02"]["complete"] is False
    assert cmd_scores(argparse.Namespace(json=False), settings) == 0
    table = capsys.readouterr().out
    assert f"2024-06-01 {len(scores):>10,}" in table and "2024-06-02" in table and "incomplete" in table

    top = listed.iloc[0]
    assert cmd_explain(argparse.Namespace(customer=top["customer_id"], as_of="2024-06-01", json=True), settings) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["risk_score"] == top["risk_score"] and e["suggested_action"] == top["suggested_action"]
    assert e["winback"] == "on the day's win-back list at rank 1"
    assert [r["text"] for r in e["reasons"]] == [top[f"reason_{i}_text"] for i in (1, 2, 3) if top[f"reason_{i}_text"]]
    low = scores[scores["risk_tier"] == "low"].iloc[0]
    assert cmd_explain(argparse.Namespace(customer=low["customer_id"], as_of="2024-06-01", json=False), settings) == 0
    text = capsys.readouterr().out
    assert f"customer {low['customer_id']} as of 2024-06-01" in text and "low tier" in text
    assert "not on the win-back list: low tier" in text and "suggested action" in text
    # the churn-time curve of the scores, in words
    row = scores[scores["customer_id"] == low["customer_id"]].iloc[0]
    assert "churn-time curve (a second model, for timing; the risk score above is the churn model's)" in text
    assert (f"P(no purchase within 30/60/90/180 days) {_percent(row['p_no_purchase_30d'])} / "
            f"{_percent(row['p_no_purchase_60d'])} / {_percent(row['p_no_purchase_90d'])} / "
            f"{_percent(row['p_no_purchase_180d'])}") in text
    assert (f"next purchase: median {_days(row['median_days_to_next_purchase'])} (around "
            f"{row['expected_next_purchase_date']})" if row["median_days_to_next_purchase"] <= 730
            else "next purchase: median over two years away") in text
    assert (_percent(0.001), _percent(0.999), _percent(0.0), _percent(0.5)) == ("<1%", ">99%", "0%", "50%")
    assert (_days(1.2), _days(0.6), _days(0), _days(41)) == ("1 day", "1 day", "0 days", "41 days")
    with pytest.raises(UserError, match="'nobody' has no score on 2024-06-01"):
        cmd_explain(argparse.Namespace(customer="nobody", as_of="2024-06-01", json=False), settings)
    with pytest.raises(UserError, match="is not UTF-8 text"):  # a byte that is not UTF-8 on the command line
        cmd_explain(argparse.Namespace(customer="C\udcff", as_of="2024-06-01", json=False), settings)
    padded = f"  {low['customer_id']} "  # ids are looked up by the rule ingest stored them by
    assert cmd_explain(argparse.Namespace(customer=padded, as_of="2024-06-01", json=True), settings) == 0
    assert json.loads(capsys.readouterr().out)["customer_id"] == low["customer_id"]
    # a damaged _SUCCESS record makes its day incomplete: listed as such, refused by explain, never a crash
    marker = trained.scores / "as_of=2024-06-02" / "_SUCCESS"
    for damage in ("{not json", "{}"):
        marker.write_text(damage)
        assert cmd_scores(argparse.Namespace(json=True), settings) == 0
        assert {d["as_of"]: d for d in json.loads(capsys.readouterr().out)}["2024-06-02"]["complete"] is False
        with pytest.raises(UserError, match="not complete"):
            cmd_explain(argparse.Namespace(customer="x", as_of="2024-06-02", json=False), settings)
    with pytest.raises(UserError, match="not complete"):
        cmd_explain(argparse.Namespace(customer="x", as_of="2024-06-02", json=False), settings)
    import shutil

    shutil.rmtree(trained.scores / "as_of=2024-06-02")


def test_churn_winback_without_a_prefect_server_runs_the_function_not_a_flow(trained, monkeypatch, capsys):
    """Issue #14: a one-shot `churn winback` paid 10-30 s for Prefect's temporary server on a one-second step."""
    import argparse

    from churn.cli import cmd_winback
    from churn.settings import defaults

    run_score(trained, as_of=pd.Timestamp("2024-06-01T00:00Z"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    def no_flow(*a, **k):
        raise AssertionError("started a Prefect flow")

    monkeypatch.setattr("flows.winback.winback_flow", no_flow)
    args = argparse.Namespace(as_of="2024-06-01", top=None, contacts=None, pseudonymise=False, json=False)
    assert cmd_winback(args, defaults(trained.home)) == 0
    assert "win-back list for 2024-06-01" in capsys.readouterr().out
