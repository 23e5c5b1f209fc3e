"""Point-in-time purchase history in the form the BTYD models read: repeat purchases, recency and age.

The buy-till-you-die models (BG/NBD, Pareto/NBD) start a customer's clock at the first *purchase*,
not the first event (`tenure_days` counts from the first event of any type, e.g. a visit), and count
repeat purchases in whole days (two invoices on one day are one purchase occasion, as lifetimes'
`summary_data_from_transaction_data` does). So these three columns come from their own small query
over purchases at or before `as_of`; they are baseline inputs, not model features. Pure: SQL as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.definitions import AS_OF, epoch_us, us_as_days
from features.sql import in_dialect, timestamp


def _days_since_epoch(col: str) -> str:
    return us_as_days(epoch_us(col))


@dataclass(frozen=True)
class HistoryColumn:
    """One column of the purchase history: name, meaning, unit and its SQL over the per-customer `days` step."""

    name: str
    meaning: str
    unit: str
    expression: str


PURCHASE_HISTORY: tuple[HistoryColumn, ...] = (
    HistoryColumn("repeat_purchase_days", "days with a purchase after the first purchase day (BTYD frequency)",
                  "count", "CAST(count(*) - 1 AS DOUBLE)"),
    HistoryColumn("purchase_span_days", "first to last purchase day (BTYD recency)", "days",
                  "CAST(max(day) - min(day) AS DOUBLE)"),
    HistoryColumn("days_since_first_purchase", "first purchase day to the cutoff (BTYD age T)", "days",
                  f"{_days_since_epoch(AS_OF)} - min(day)"),
)
HISTORY_NAMES: list[str] = [c.name for c in PURCHASE_HISTORY]
# role -> column, for the BTYD models
FREQUENCY, RECENCY, AGE = HISTORY_NAMES


def purchase_history_sql(as_of: pd.Timestamp, dialect: str = "duckdb") -> str:
    """The history query over a table `events` (contract columns) as of one cutoff: one row per buyer, in `dialect`."""
    asof = timestamp(as_of)
    cols = ",\n    ".join(f"{c.expression.replace(AS_OF, asof)} AS {c.name}" for c in PURCHASE_HISTORY)
    return in_dialect(f"""
WITH days AS (
    -- whole UTC days since 1970, as integers: exact and independent of the session's time zone
    SELECT DISTINCT customer_id, CAST(floor({_days_since_epoch("event_time")}) AS BIGINT) AS day
    FROM events WHERE event_type = 'purchase' AND event_time <= {asof}
)
SELECT customer_id,
    {cols}
FROM days GROUP BY customer_id
ORDER BY customer_id
""", dialect)


def purchase_history(events, as_of: pd.Timestamp, customers: pd.Index) -> pd.DataFrame:
    """The history columns indexed like `customers` (float64; empty for a customer who never bought)."""
    from features.customer import run

    return history_frame(run(events, lambda dialect: purchase_history_sql(as_of, dialect)), customers)


def history_frame(rows: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    """The history query's result (from any engine) indexed like `customers` (float64; empty for non-buyers)."""
    rows = rows.assign(customer_id=rows["customer_id"].astype(str))
    return rows.set_index("customer_id").reindex(customers)[HISTORY_NAMES].astype("float64")
