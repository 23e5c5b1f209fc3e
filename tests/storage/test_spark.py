"""The feature build on Spark: the DuckDB SQL transpiled by SQLGlot builds the same tables on the same store."""

from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from features.customer import (
    FEATURE_NAMES,
    FEATURES,
    churn_labels,
    customer_features,
    feature_sql,
    labels_sql,
    next_activity_sql,
    time_to_next_activity,
)
from features.purchase_history import purchase_history_sql
from features.snapshots import labelled_snapshot
from storage import store
from tests.conftest import needs_java

pytestmark = needs_java


def _cutoffs(paths):
    first, last, _ = store.store_time_range(paths)
    return [first + pd.Timedelta(days=400), last]


def _same_table(got: pd.DataFrame, expected: pd.DataFrame, exact: list[str]):
    """Same rows in the same order, NULLs in the same places, `exact` columns equal, the rest to 1e-9 relative."""
    assert got.index.equals(expected.index)
    assert list(got.columns) == list(expected.columns)
    assert (got.isna() == expected.isna()).all().all()
    assert_frame_equal(got[exact], expected[exact], check_exact=True)
    assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=0)


def test_both_engines_build_the_same_feature_table(small_store, spark):
    """As of the last event (the snapshot test below covers an earlier cutoff, features included)."""
    from storage.spark import events

    as_of = _cutoffs(small_store)[1]
    con = store.connect(small_store)
    try:
        duck = customer_features(store.events_relation(con, small_store), as_of, 365)
    finally:
        con.close()
    on_spark = customer_features(events(spark, small_store), as_of, 365)
    assert len(duck) > 500 and duck.isna().any().any()  # some empty values to compare
    _same_table(on_spark, duck, [n for n in FEATURE_NAMES if FEATURES[n][1] == "count"])


def test_both_engines_build_the_same_labelled_snapshot(small_store, spark):
    from storage.spark import events

    as_of = _cutoffs(small_store)[0]
    con = store.connect(small_store)
    try:
        duck = labelled_snapshot(store.events_relation(con, small_store), as_of, 90, 365).set_index("customer_id")
    finally:
        con.close()
    on_spark = labelled_snapshot(events(spark, small_store), as_of, 90, 365).set_index("customer_id")
    assert 0 < duck["churned"].sum() < len(duck)
    exact = [n for n in FEATURE_NAMES if FEATURES[n][1] == "count"] + ["repeat_purchase_days", "purchase_span_days"]
    assert_series_equal(on_spark.pop("churned"), duck.pop("churned"))
    assert_series_equal(on_spark.pop("cutoff"), duck.pop("cutoff"))
    _same_table(on_spark, duck, exact)


def _queries(as_of):
    return {"features": lambda d: feature_sql(as_of, 365, d),
            "purchase history": lambda d: purchase_history_sql(as_of, d),
            "labels": lambda d: labels_sql(as_of, 90, ("purchase", "visit"), d),
            "next activity": lambda d: next_activity_sql(as_of, as_of + pd.Timedelta(days=120), ("purchase",), d)}


def test_spark_resolves_every_transpiled_query(small_store, spark):
    """Spark's analyser resolves every function and type the transpiled queries use, so a DuckDB-only construct
    added to any feature record fails here (the output schema is checked, nothing is run)."""
    from storage.spark import events

    events(spark, small_store)
    as_of = _cutoffs(small_store)[1]
    for name, query in _queries(as_of).items():
        columns = spark.sql(query("spark")).columns
        assert columns[0] == "customer_id", name
    assert spark.sql(feature_sql(as_of, 365, "spark")).columns == ["customer_id", *FEATURE_NAMES]


@pytest.mark.parametrize("duckdb_only", ["CAST(count(*) AS HUGEINT)", "list_sum([count(*)])",
                                         "epoch_ns(max(e.event_time))"])
def test_a_duckdb_only_construct_in_a_record_fails_the_spark_check(small_store, spark, monkeypatch, duckdb_only):
    from pyspark.errors import PySparkException

    from features import customer, definitions
    from storage.spark import events

    events(spark, small_store)
    extra = definitions.Aggregate("duckdb_only", duckdb_only)
    monkeypatch.setattr(customer, "aggregates", lambda: [*definitions.aggregates(), extra])
    sql = customer.feature_sql(_cutoffs(small_store)[1], 365, "spark")
    with pytest.raises(PySparkException):
        spark.sql(sql)


def test_labels_agree_on_a_hand_written_log(spark):
    """Events exactly at the cutoff and at the horizon's end: (as_of, as_of + horizon], on both engines."""
    from storage.spark import SparkEvents

    as_of = pd.Timestamp("2024-07-01T00:00:00Z")
    times = [as_of, as_of + pd.Timedelta(microseconds=1), as_of + pd.Timedelta(days=90),
             as_of + pd.Timedelta(days=90, microseconds=1)]
    frame = pd.DataFrame({"customer_id": ["at", "just_after", "at_end", "past_end"], "event_type": "purchase",
                          "event_time": pd.Series(times).astype("datetime64[us, UTC]")})
    spark.createDataFrame(frame).createOrReplaceTempView("events")
    customers = pd.Index(frame["customer_id"])
    expected = pd.Series([1, 0, 0, 1], index=customers, name="churned", dtype="int64")
    assert_series_equal(churn_labels(frame, as_of, 90, customers), expected)
    assert_series_equal(churn_labels(SparkEvents(spark), as_of, 90, customers), expected)
    # the churn-time curve's target: the first activity in (as_of, until], to the microsecond, on both engines
    until = as_of + pd.Timedelta(days=90)
    duck = time_to_next_activity(frame, as_of, until, customers)
    assert_frame_equal(time_to_next_activity(SparkEvents(spark), as_of, until, customers), duck)
    assert duck["next_activity_days"].tolist()[1:3] == [1e-6 / 86_400, 90.0] and duck.iloc[[0, 3], 0].isna().all()


def test_the_engine_setting_chooses_where_the_features_are_built(small_store, spark):
    from storage.engine import events_on
    from storage.spark import SparkEvents

    sql = "SELECT count(*) AS n, count(DISTINCT customer_id) AS customers FROM events"
    with events_on("duckdb", small_store) as duck_events:
        duck = duck_events.query("events", sql).df()
    with events_on("spark", small_store, "local[2]") as spark_events:
        assert isinstance(spark_events, SparkEvents)
        on_spark = spark_events.query(sql)
    assert on_spark.astype("int64").to_dict() == duck.astype("int64").to_dict()


# no row or column sampling (with it each Spark worker draws its own sample: a seed's worth of difference, about
# 0.005 ROC-AUC on the small store's 1,488 validation customers) and a histogram bin per distinct value (with 256
# bins the workers' merged quantile sketch cuts a little elsewhere than one process: the refit's predictions then
# differ by up to 0.08): so the engines must grow the same trees, to float precision
SAME_TREES = {"subsample": 1.0, "colsample_bytree": 1.0, "max_bin": 65536}


def test_every_xgboost_worker_gets_training_rows_wherever_the_filter_left_them(spark):
    """The training rows of the stored snapshots can all sit in one of two partitions (train rows first, then the
    validation rows, filtered out): each of the estimator's workers still gets a share of them."""
    from models.spark_model import spread_over_workers

    rows = spark.createDataFrame(pd.DataFrame({"x": range(1000), "split": ["train"] * 600 + ["validation"] * 400}))
    train = rows.coalesce(1).union(rows.limit(0)).repartition(2, "split").where("split = 'train'")
    assert sorted(train.rdd.glom().map(len).collect()) == [0, 600]  # what the estimator would have been given
    spread = spread_over_workers(train, 2).rdd.glom().map(len).collect()
    assert len(spread) == 2 and min(spread) >= 250 and sum(spread) == 600


def test_the_pipeline_on_spark_and_on_duckdb_agrees_end_to_end(small_store, spark, tmp_path):
    """Issue #16: features -> snapshots -> train -> register -> score -> win-back with engine "spark" and with
    "duckdb", each on its own copy of the same ingested store: the same labelled snapshots, the same model (XGBoost's
    Spark estimator against the in-process fit, same early-stopping customers, ROC-AUC within 0.005, predictions to
    1e-5, the refit too), the baselines Spark fitted equal to the driver's, and the same top 100 of the win-back
    list. Spark jobs are counted: work that silently stayed on the driver fails."""
    import shutil

    import numpy as np

    from flows.score import score
    from flows.train import build_snapshots, register, train
    from flows.winback import winback
    from storage import layout
    from tests.conftest import NOW, config

    jobs = spark.sparkContext.statusTracker()
    runs = {}
    for engine in ("duckdb", "spark"):
        paths = layout.Paths(tmp_path / engine / "home")
        shutil.copytree(small_store.home, paths.home)
        before = len(jobs.getJobIdsForGroup())
        train_config = config(paths, "train", n_train_cutoffs=2, bootstrap_resamples=50, btyd_baselines=False,
                              model_params=SAME_TREES, engine=engine)
        _, info = build_snapshots(train_config, None)
        result, frame = train(train_config, info)
        registered = register(train_config, result, frame, info)
        scored = score(config(paths, "score", engine=engine), None, now=NOW)
        listed = winback(config(paths, "winback"), None)
        runs[engine] = {"jobs": len(jobs.getJobIdsForGroup()) - before, "frame": frame, "result": result,
                        "registered": registered, "scores": pd.read_parquet(scored["path"]),
                        "list": pd.read_parquet(listed["parquet"])}
    duck, on_spark = runs["duckdb"], runs["spark"]
    assert duck["jobs"] == 0 and on_spark["jobs"] > 10

    # the same labelled snapshots (features, labels, splits): counts exact, the rest to 1e-9 relative
    exact = [n for n in FEATURE_NAMES if FEATURES[n][1] == "count"] + ["churned", "split"]
    _same_table(on_spark["frame"], duck["frame"], exact)

    a, b = duck["result"], on_spark["result"]
    assert abs(b.metrics["roc_auc"] - a.metrics["roc_auc"]) < 0.005
    assert b.model.best_iteration_ == a.model.best_iteration_ > 5
    assert b.sizes == a.sizes  # the same early-stopping customers
    assert (a.predictions["customer_id"] == b.predictions["customer_id"]).all()
    np.testing.assert_allclose(b.predictions["model"], a.predictions["model"], atol=1e-5)
    validation = duck["frame"][duck["frame"]["split"] == "validation"]
    np.testing.assert_allclose(b.refit.churn_probability(validation), a.refit.churn_probability(validation), atol=1e-5)
    assert b.refit.refit_rows_ == a.refit.refit_rows_
    rule = next(c for c in a.predictions.columns if c.startswith("recency_rule"))
    np.testing.assert_allclose(b.predictions[rule], a.predictions[rule], rtol=1e-12)
    # Spark ML's L2 logistic regression with sklearn's penalty (regParam = 1/rows): the same model up to the
    # solvers' tolerance and Spark's sample standard deviation in the scaler (about 2e-4 here)
    np.testing.assert_allclose(b.predictions["logistic_rfm"], a.predictions["logistic_rfm"], atol=1e-3)
    assert duck["registered"]["alias"] == on_spark["registered"]["alias"] == "champion"

    # scored by each engine with its own model: the same customers, probabilities to 1e-5, the same top 100
    s, t = duck["scores"].set_index("customer_id"), on_spark["scores"].set_index("customer_id")
    assert s.index.sort_values().equals(t.index.sort_values()) and len(s) > 500
    np.testing.assert_allclose(t.loc[s.index, "churn_probability"], s["churn_probability"], atol=1e-5)
    top = [list(x.sort_values("winback_rank")["customer_id"].head(100)) for x in (duck["list"], on_spark["list"])]
    assert len(top[0]) == 100 and top[0] == top[1]


def test_bench_measures_the_feature_build_on_spark_beside_duckdb(small_store, spark, tmp_path):
    """`churn bench --engine spark`: the same stage on the same store, both rows in the table, side by side."""
    from churn.bench import _run, _write

    duck = _run("features", {"home": str(small_store.home)})
    on_spark = _run("features", {"home": str(small_store.home), "engine": "spark"})
    assert on_spark["customers"] == duck["customers"] > 500 and on_spark["events"] == duck["events"]
    assert on_spark["rss"] == "Python only, not the JVM" and "rss" not in duck
    rows = [{"size": "5K", "stage": "features", "wall_s": 0.5, **duck},
            {"size": "5K", "stage": "features [spark]", "wall_s": 5.0, **on_spark},
            {"size": "5K", "stage": "train", "wall_s": 20.0}, {"size": "5K", "stage": "train [spark]", "wall_s": 30.0},
            {"size": "5K", "stage": "score (exact reasons for top 50)", "wall_s": 4.0},
            {"size": "5K", "stage": "score [spark] (exact reasons for top 50)", "wall_s": 12.0}]
    out = tmp_path / "B.md"
    _write(rows, out, out.with_suffix(".json"))
    text = out.read_text()
    assert "| 5K | features [spark] | 5.0 |" in text
    assert "features on spark 5.0 s vs DuckDB and this process 0.5 s: **10.0x** the time" in text
    assert "train on spark 30.0 s vs DuckDB and this process 20.0 s: **1.5x** the time" in text
    assert "score (exact reasons for top 50) on spark 12.0 s vs DuckDB and this process 4.0 s: **3.0x**" in text


def test_scoring_on_spark_and_over_spark_connect_publishes_the_scores_of_one_machine(trained, spark, spark_connect,
                                                                                      tmp_path, capsys, monkeypatch):
    """engine = "spark" scores by partition (predictions, curve, reason codes) with the ranks and the exact-reason
    budget taken over everyone by Spark: the published scores are the single-machine ones, value for value, and pass
    the same contract check before publishing; the same over a real Spark Connect server (spark_master sc://...),
    where `churn train` is one clear error (XGBoost's Spark estimator needs a classic session)."""
    import shutil

    from pandas.testing import assert_frame_equal

    from flows.score import score
    from storage import layout
    from tests.conftest import NOW, config

    home = tmp_path / "home"
    shutil.copytree(trained.home, home)
    paths = layout.Paths(home)
    # a small exact budget, so all three reason methods and both window orderings are in play
    on_duckdb = config(paths, "score", exact_reasons_top_n=100)
    duck = score(on_duckdb, None, now=NOW)
    duck_scores = pd.read_parquet(duck["path"])
    jobs = spark.sparkContext.statusTracker()
    before = len(jobs.getJobIdsForGroup())
    on_spark = score(on_duckdb.model_copy(update={"engine": "spark"}), None, now=NOW)
    assert len(jobs.getJobIdsForGroup()) > before + 2  # the scoring ran on Spark
    spark_scores = pd.read_parquet(on_spark["path"])
    assert set(duck_scores["reasons_method"]) == {"exact", "approximate", "none"}
    assert (duck_scores["reasons_method"] == "exact").sum() == 100
    assert duck_scores["p_no_purchase_90d"].notna().all()  # the curve is scored too
    assert on_spark["validation"] == duck["validation"] and on_spark["tiers"] == duck["tiers"]
    assert_frame_equal(spark_scores, duck_scores, check_exact=False, rtol=1e-12, atol=0)
    # over Spark Connect: the same scoring in its own process (PySpark has one kind of session per process)
    import subprocess
    import sys

    code = ("import sys; from flows.score import score; from storage import engine, layout; "
            "from tests.conftest import NOW, config; "
            "from pyspark.sql.connect.session import SparkSession as Connect; "
            f"assert isinstance(engine.spark_session({spark_connect!r}), Connect); "
            f"c = config(layout.Paths(__import__('pathlib').Path({str(home)!r})), 'score', engine='spark', "
            f"spark_master={spark_connect!r}, exact_reasons_top_n=100); print(score(c, None, now=NOW)['path'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Window operation" not in r.stderr  # the known one-partition windows (README) are not a warning per run
    assert_frame_equal(pd.read_parquet(r.stdout.strip().splitlines()[-1]), duck_scores, check_exact=False, rtol=1e-12,
                       atol=0)
    from churn.cli import main

    monkeypatch.setenv("CHURN_ENGINE", "spark")
    monkeypatch.setenv("CHURN_SPARK_MASTER", spark_connect)
    capsys.readouterr()
    code = main(["--home", str(home), "train"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "Spark Connect" in err[0], err
