"""The feature SQL in each dialect: DuckDB's text unchanged, Spark's transpiled without DuckDB-only spellings."""

import pandas as pd
import pytest

from features.customer import feature_sql, labels_sql
from features.purchase_history import purchase_history_sql
from features.sql import in_dialect

AS_OF = pd.Timestamp("2024-07-01T00:00:00Z")
QUERIES = [lambda d: feature_sql(AS_OF, 365, d), lambda d: purchase_history_sql(AS_OF, d),
           lambda d: labels_sql(AS_OF, 90, ("purchase",), d)]


@pytest.mark.parametrize("query", QUERIES)
def test_spark_sql_has_no_duckdb_only_spelling(query):
    duck, spark = query("duckdb"), query("spark").upper()
    assert "epoch_us(" in duck and "TIMESTAMPTZ '2024-07-01T00:00:00+00:00'" in duck
    assert "UNIX_MICROS(" in spark
    for duckdb_only in ("EPOCH_US", "EPOCH(", "HUGEINT", "INT128", "TIMESTAMPTZ", "INTERVAL"):
        assert duckdb_only not in spark


def test_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="allowed: duckdb, spark"):
        in_dialect("SELECT 1", "polars")
