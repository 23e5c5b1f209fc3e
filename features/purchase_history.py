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

from features.definitions import AS_OF, DAY_SECONDS


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
                  f"epoch({AS_OF}) / {DAY_SECONDS} - min(day)"),
)
HISTORY_NAMES: list[str] = [c.name for c in PURCHASE_HISTORY]
# role -> column, for the BTYD models
FREQUENCY, RECENCY, AGE = HISTORY_NAMES


def purchase_history_sql(as_of: pd.Timestamp) -> str:
    """The history query over a table `events` (contract columns) as of one cutoff: one row per buyer."""
    t = pd.Timestamp(as_of).tz_convert("UTC").isoformat()
    asof = f"TIMESTAMPTZ '{t}'"
    cols = ",\n    ".join(f"{c.expression.replace(AS_OF, asof)} AS {c.name}" for c in PURCHASE_HISTORY)
    return f"""
WITH days AS (
    -- whole UTC days since 1970, as integers: exact and independent of the session's time zone
    SELECT DISTINCT customer_id, CAST(floor(epoch_us(event_time) / {DAY_SECONDS * 1e6}) AS BIGINT) AS day
    FROM events WHERE event_type = 'purchase' AND event_time <= {asof}
)
SELECT customer_id,
    {cols}
FROM days GROUP BY customer_id
ORDER BY customer_id
"""


def purchase_history(events, as_of: pd.Timestamp, customers: pd.Index) -> pd.DataFrame:
    """The history columns indexed like `customers` (float64; empty for a customer who never bought)."""
    from features.customer import _relation

    out = _relation(events).query("events", purchase_history_sql(as_of)).df()
    out["customer_id"] = out["customer_id"].astype(str)
    return out.set_index("customer_id").reindex(customers)[HISTORY_NAMES].astype("float64")
