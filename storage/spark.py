"""The event store on Spark: a Spark session, the store's Parquet files as a table `events`, query results as pandas.

The feature SQL is the DuckDB one transpiled (features.sql), so `features.customer.customer_features`,
`churn_labels` and `features.snapshots.labelled_snapshot` take `events(spark, paths)` in place of a DuckDB
relation and build the same tables. Needs the `spark` extra (`pyspark`, `sqlglot`) and Java 17+.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from storage import store
from storage.layout import Paths

DEFAULT_MASTER = "local[2]"
PANDAS_WARNING = "PySpark does not yet fully support pandas"
LOG4J2 = Path(__file__).with_name("log4j2.properties")  # the JVM's logging: warnings and errors only
LOCAL_SHUFFLE_PARTITIONS = 8  # Spark's default 200 is for clusters: on one machine each costs a task for nothing


def session(master: str = DEFAULT_MASTER, app_name: str = "churn"):
    """A Spark session: local (`local[N]`, bound to 127.0.0.1), a cluster master URL, or Spark Connect (`sc://...`,
    which needs `pyspark[connect]`). Every session reads and writes instants in UTC."""
    import warnings

    # results come back through Arrow (`toArrow`), not PySpark's pandas conversion, which is what this warns about
    warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):
        # the client warns of the two windows over everyone (rank, exact-reason budget): known and documented,
        # as classic Spark's JVM says it in a log line kept out by log4j2.properties
        warnings.filterwarnings("ignore", message=".*No Partition Defined for Window operation")
        builder = SparkSession.builder.remote(master)
    else:
        # Spark's Python workers run `python3` from PATH unless told: make them this interpreter (its packages)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (SparkSession.builder.master(master).config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   # the Python workers say it too, once per worker, on stderr (see the filter above)
                   .config("spark.executorEnv.PYTHONWARNINGS", f"ignore:{PANDAS_WARNING}:FutureWarning")
                   .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J2.as_uri()}"))
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # never the machine's network address
            builder = (builder.config("spark.driver.host", "127.0.0.1")
                       .config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS)))
    spark = builder.appName(app_name).config("spark.sql.session.timeZone", "UTC").getOrCreate()
    if not master.startswith("sc://"):
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def task_slots(spark) -> int:
    """How many tasks the session runs at once (XGBoost's Spark estimator trains with one worker per slot, all at
    once): the default parallelism of a local or cluster session, `spark.default.parallelism` (else 2) on Connect."""
    try:
        return max(1, int(spark.sparkContext.defaultParallelism))
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        return max(1, int(spark.conf.get("spark.default.parallelism", "2")))


@dataclass(frozen=True)
class SparkEvents:
    """The event store as the Spark table `events` (a temporary view over exactly the committed files)."""

    spark: object
    dialect: str = "spark"

    def query(self, sql: str) -> pd.DataFrame:
        """The result of `sql` (Spark SQL) as pandas, through Arrow."""
        return self.frame(sql).toArrow().to_pandas()

    def frame(self, sql: str):
        """The result of `sql` (Spark SQL) as a Spark DataFrame (computed where it is used)."""
        return self.spark.sql(sql)


def events(spark, paths: Paths, version: int | None = None) -> SparkEvents:
    """The files of the event table's latest version (or `version`), as DuckDB reads them, as the view `events`."""
    files = store.event_files(paths, version=version)
    if not files:
        store.require_events(paths)
    spark.read.parquet(*[str(f) for f in files]).createOrReplaceTempView("events")
    return SparkEvents(spark)


def snapshots(spark, path) -> object:
    """The stored labelled snapshots (`storage.catalog.write_snapshots`) as a Spark DataFrame (on a cluster the
    home folder must be where every executor reads it, as the event store must)."""
    return spark.read.parquet(str(path))
