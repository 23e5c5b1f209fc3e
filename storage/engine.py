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
        raise EngineUnavailable(f"engine 'spark' could not start a Spark session on {spark_master!r}: "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__} (it needs Java 17+)") \
            from None


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
