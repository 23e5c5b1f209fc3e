"""Point-in-time customer features: events as of a cutoff -> one row per customer.

Written once, as SQL in DuckDB's dialect that also means the same on Spark SQL (transpiled by SQLGlot,
`features.sql`), so it scans Parquet on either engine without loading the store into pandas. Each feature's
SQL is declared once, in its record in `features.definitions`; this module only assembles the query.
Only events at or before `as_of` are read; customers with no event in the lookback are out of scope.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

# re-exported: the flows, the models' callers and the tests import them from here
from features.definitions import (  # noqa: F401
    AS_OF,
    DAY_SECONDS,
    DAY_US,
    DEFINITIONS,
    FEATURE_NAMES,
    FEATURES,
    aggregates,
    epoch_us,
    us_as_days,
)
from features.sql import CANONICAL, EngineEvents, in_dialect, timestamp


def feature_sql(as_of: pd.Timestamp, lookback_days: int, dialect: str = "duckdb") -> str:
    """The feature query over a table `events` (contract columns) as of one cutoff, in `dialect` (features.sql)."""
    asof = timestamp(as_of)
    agg = ",\n        ".join(f"{a.expression.replace(AS_OF, asof)} AS {a.name}" for a in aggregates())
    select = ",\n    ".join(f"{f.expression} AS {f.name}" for f in DEFINITIONS)
    return in_dialect(f"""
WITH past AS (
    -- each event's age before the cutoff in whole microseconds: the windows compare it, exactly and without
    -- any session time zone
    SELECT customer_id, event_type, event_time, amount, discount,
           {epoch_us(asof)} - {epoch_us("event_time")} AS age_us
    FROM events WHERE event_time <= {asof}
),
gaps AS (
    -- one pass over purchases only (the window needs them sorted per customer); exact integer sums
    -- (microseconds; squares as DECIMAL(38, 0)), so parallel aggregation order cannot change the result
    SELECT customer_id,
           {us_as_days("sum(gap)")} / count(*) AS gap_mean,
           CASE WHEN count(*) > 1 THEN
               sqrt(greatest(CAST(0 AS DOUBLE),
                             (CAST(sum(CAST(gap AS DECIMAL(38, 0)) * CAST(gap AS DECIMAL(38, 0))) AS DOUBLE)
                              - power(CAST(sum(gap) AS DOUBLE), 2) / count(*)) / (count(*) - 1))) / {DAY_US}
           END AS gap_std
    FROM (
        SELECT customer_id,
               lag(age_us) OVER (PARTITION BY customer_id ORDER BY event_time) - age_us AS gap
        FROM past WHERE event_type = 'purchase'
    ) WHERE gap IS NOT NULL
    GROUP BY customer_id
),
agg AS (
    SELECT e.customer_id,
        {agg}
    FROM past e GROUP BY e.customer_id
    -- in scope: customers with an event in the lookback (one aggregation pass, no join back to the events)
    HAVING min(e.age_us) < {int(lookback_days) * DAY_US}
)
SELECT a.customer_id,
    {select}
FROM agg a LEFT JOIN gaps g USING (customer_id)
ORDER BY a.customer_id
""", dialect)


def customer_features(events, as_of: pd.Timestamp, lookback_days: int = 365) -> pd.DataFrame:
    """One row per customer active in the lookback before `as_of`, indexed by customer_id, float64 features.

    `events` is a DuckDB relation (or anything `duckdb` can scan, e.g. a pandas DataFrame) with the
    contract columns, or the events on another engine (`features.sql.EngineEvents`, e.g. `storage.spark.events`).
    """
    return feature_frame(run(events, lambda dialect: feature_sql(as_of, lookback_days, dialect)))


def feature_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The feature query's result (from any engine) as the feature table: indexed by customer_id (text), float64."""
    out = rows.set_index("customer_id")
    out.index = out.index.astype(str)
    return out[FEATURE_NAMES].astype("float64")


def labels_sql(as_of: pd.Timestamp, horizon_days: int, activity_types: tuple[str, ...] = ("purchase",),
               dialect: str = "duckdb") -> str:
    """The customers with an activity event in (as_of, as_of + horizon], over a table `events`, in `dialect`."""
    asof = timestamp(as_of)
    types = ", ".join(f"'{x}'" for x in activity_types)
    return in_dialect(f"""
SELECT DISTINCT customer_id FROM events
WHERE event_time > {asof} AND {epoch_us("event_time")} - {epoch_us(asof)} <= {int(horizon_days) * DAY_US}
  AND event_type IN ({types})""", dialect)


def next_activity_sql(as_of: pd.Timestamp, until: pd.Timestamp, activity_types: tuple[str, ...] = ("purchase",),
                      dialect: str = "duckdb") -> str:
    """Per customer with an activity event in (as_of, until]: the microseconds from as_of to the first one, over a
    table `events`, in `dialect` (the churn-time curve's target: a customer absent here waited past `until`)."""
    asof, end = timestamp(as_of), timestamp(until)
    types = ", ".join(f"'{x}'" for x in activity_types)
    return in_dialect(f"""
SELECT customer_id, min({epoch_us("event_time")}) - {epoch_us(asof)} AS next_us FROM events
WHERE event_time > {asof} AND event_time <= {end} AND event_type IN ({types})
GROUP BY customer_id""", dialect)


def time_to_next_activity(events, as_of: pd.Timestamp, until: pd.Timestamp, customers: pd.Index,
                          activity_types: tuple[str, ...] = ("purchase",)) -> pd.DataFrame:
    """Per customer of `customers` (index): `next_activity_days`, the days from as_of to the first activity event in
    (as_of, until] (NaN if there is none), and `observed_days`, the days from as_of to until (how long a customer
    without one is known to have waited: censored there)."""
    found = run(events, lambda dialect: next_activity_sql(as_of, until, activity_types, dialect))
    days = pd.Series(found["next_us"].to_numpy(dtype="float64") / DAY_US, index=found["customer_id"].astype(str))
    observed = (pd.Timestamp(until) - pd.Timestamp(as_of)) / pd.Timedelta(days=1)
    return pd.DataFrame({"next_activity_days": days.reindex(customers.astype(str)).to_numpy(),
                         "observed_days": float(observed)}, index=customers)


def churn_labels(events, as_of: pd.Timestamp, horizon_days: int, customers: pd.Index,
                 activity_types: tuple[str, ...] = ("purchase",)) -> pd.Series:
    """1 if the customer has no activity event in (as_of, as_of + horizon], else 0; indexed like `customers`."""
    active = run(events, lambda dialect: labels_sql(as_of, horizon_days, activity_types, dialect))
    return labels_from(active, customers)


def labels_from(active: pd.DataFrame, customers: pd.Index) -> pd.Series:
    """The churn label of each of `customers` from the label query's result (from any engine)."""
    seen = set(active["customer_id"].astype(str))
    return pd.Series([0 if c in seen else 1 for c in customers], index=customers, name="churned", dtype="int64")


def run(events, query: Callable[[str], str]) -> pd.DataFrame:
    """The result of `query(dialect)` over `events`: on DuckDB for a relation or frame, else on the events' engine."""
    if isinstance(events, EngineEvents) and not isinstance(events, pd.DataFrame):
        return events.query(query(events.dialect))
    return _relation(events).query("events", query(CANONICAL)).df()


def _relation(events):
    import duckdb

    if isinstance(events, duckdb.DuckDBPyRelation):
        return events
    return duckdb.from_df(events) if isinstance(events, pd.DataFrame) else duckdb.arrow(events)
