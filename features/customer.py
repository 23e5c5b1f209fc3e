"""Point-in-time customer features: events as of a cutoff -> one row per customer.

Written as one portable SQL query (DuckDB here; the same SQL runs on Spark SQL with only the date
arithmetic macros changed), so it scans Parquet without loading the store into pandas. Each feature's
SQL is declared once, in its record in `features.definitions`; this module only assembles the query.
Only events at or before `as_of` are read; customers with no event in the lookback are out of scope.
"""

from __future__ import annotations

import pandas as pd

# re-exported: the flows, the models' callers and the tests import them from here
from features.definitions import AS_OF, DAY_SECONDS, DEFINITIONS, FEATURE_NAMES, FEATURES, aggregates  # noqa: F401


def feature_sql(as_of: pd.Timestamp, lookback_days: int) -> str:
    """The feature query over a table `events` (contract columns) as of one cutoff."""
    t = pd.Timestamp(as_of).tz_convert("UTC").isoformat()
    asof = f"TIMESTAMPTZ '{t}'"
    agg = ",\n        ".join(f"{a.expression.replace(AS_OF, asof)} AS {a.name}" for a in aggregates())
    select = ",\n    ".join(f"{f.expression} AS {f.name}" for f in DEFINITIONS)
    return f"""
WITH past AS (
    SELECT customer_id, event_type, event_time, amount, discount FROM events WHERE event_time <= {asof}
),
gaps AS (
    -- one pass over purchases only (the window needs them sorted per customer); exact integer sums
    -- (microseconds), so parallel aggregation order cannot change the result
    SELECT customer_id,
           sum(gap) / count(*) / {DAY_SECONDS * 1e6} AS gap_mean,
           CASE WHEN count(*) > 1 THEN
               sqrt(greatest(0.0, (CAST(sum(gap * gap) AS DOUBLE) - CAST(sum(gap) AS DOUBLE) ^ 2 / count(*))
                    / (count(*) - 1))) / {DAY_SECONDS * 1e6}
           END AS gap_std
    FROM (
        SELECT customer_id,
               CAST(epoch_us(event_time) - epoch_us(lag(event_time) OVER (PARTITION BY customer_id ORDER BY event_time))
                    AS HUGEINT) AS gap
        FROM past WHERE event_type = 'purchase'
    ) WHERE gap IS NOT NULL
    GROUP BY customer_id
),
agg AS (
    SELECT e.customer_id,
        {agg}
    FROM past e GROUP BY e.customer_id
    -- in scope: customers with an event in the lookback (one aggregation pass, no join back to the events)
    HAVING max(e.event_time) > {asof} - INTERVAL {int(lookback_days)} DAY
)
SELECT a.customer_id,
    {select}
FROM agg a LEFT JOIN gaps g USING (customer_id)
ORDER BY a.customer_id
"""


def customer_features(events, as_of: pd.Timestamp, lookback_days: int = 365) -> pd.DataFrame:
    """One row per customer active in the lookback before `as_of`, indexed by customer_id, float64 features.

    `events` is a DuckDB relation (or anything `duckdb` can scan, e.g. a pandas DataFrame) with the
    contract columns.
    """
    rel = _relation(events)
    out = rel.query("events", feature_sql(as_of, lookback_days)).df()
    out = out.set_index("customer_id")
    out.index = out.index.astype(str)
    return out[FEATURE_NAMES].astype("float64")


def churn_labels(events, as_of: pd.Timestamp, horizon_days: int, customers: pd.Index,
                 activity_types: tuple[str, ...] = ("purchase",)) -> pd.Series:
    """1 if the customer has no activity event in (as_of, as_of + horizon], else 0; indexed like `customers`."""
    t = pd.Timestamp(as_of).tz_convert("UTC").isoformat()
    types = ", ".join(f"'{x}'" for x in activity_types)
    sql = f"""
        SELECT DISTINCT customer_id FROM events
        WHERE event_time > TIMESTAMPTZ '{t}' AND event_time <= TIMESTAMPTZ '{t}' + INTERVAL {int(horizon_days)} DAY
          AND event_type IN ({types})"""
    active = set(_relation(events).query("events", sql).df()["customer_id"].astype(str))
    return pd.Series([0 if c in active else 1 for c in customers], index=customers, name="churned", dtype="int64")


def _relation(events):
    import duckdb

    if isinstance(events, duckdb.DuckDBPyRelation):
        return events
    return duckdb.from_df(events) if isinstance(events, pd.DataFrame) else duckdb.arrow(events)
