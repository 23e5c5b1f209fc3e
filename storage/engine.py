"""The engine the feature build runs on, chosen in one place: the event store as the table the feature SQL reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from churn.errors import UserError
from storage import store
from storage.layout import Paths


class EngineUnavailable(UserError, RuntimeError):
    """The configured engine cannot start here (its extra or Java is missing)."""


def spark_session(spark_master: str):
    """The process's Spark session on `spark_master` (started once, left running for the next build), or
    EngineUnavailable in one line when the extra or Java is missing or the master does not answer."""
    from storage import spark

    try:
        import pyspark  # noqa: F401
        import sqlglot  # noqa: F401
    except ImportError as e:  # depends on the installed extras
        raise EngineUnavailable(f"engine 'spark' needs the spark extra ({e.name} is not installed): "
                                "`make install-spark`, or `uv sync --extra spark`") from None
    try:
        return spark.session(spark_master)
    except Exception as e:  # noqa: BLE001 - Java missing, a master that does not answer: one clear line
        hint = "" if spark_master.startswith("sc://") else " (it needs Java 17+)"  # a Connect client needs no Java
        raise EngineUnavailable(f"engine 'spark' could not start a Spark session on {spark_master!r}: "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}{hint}") from None


def require_trainable(engine: str, spark_master: str) -> None:
    """EngineUnavailable, before anything runs, when `churn train` cannot fit on this engine's session: XGBoost's
    Spark estimator needs a classic Spark session (a SparkContext for its barrier tasks), which Spark Connect does
    not give. Feature builds and scoring run over Spark Connect."""
    if engine == "spark" and spark_master.startswith("sc://"):
        raise EngineUnavailable(f"engine 'spark' trains with XGBoost's Spark estimator, which needs a classic Spark "
                                f"session, and spark_master {spark_master!r} is Spark Connect: for `churn train` set "
                                f"spark_master to the cluster's master URL (spark://, yarn, k8s://) or engine = "
                                f"\"duckdb\"; scoring runs over Spark Connect")


@contextmanager
def events_on(engine: str, paths: Paths, spark_master: str = "local[2]", version: int | None = None) -> Iterator[object]:
    """The event store's latest version (or `version`) on `engine` ("duckdb": a DuckDB relation; "spark":
    `storage.spark.SparkEvents`),
    for `features.customer.customer_features`, `churn_labels` and the snapshots. A Spark session is shared by
    the whole process (and left running for the next build), a DuckDB connection closed on leaving."""
    if engine == "duckdb":
        con = store.connect(paths)
        try:
            yield store.events_relation(con, paths, version)
        finally:
            con.close()
    elif engine == "spark":
        from storage import spark

        yield spark.events(spark_session(spark_master), paths, version)
    else:
        raise EngineUnavailable(f"unknown engine {engine!r}; allowed: duckdb, spark")
