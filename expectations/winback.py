"""The win-back list contract: what the campaign team's Parquet and CSV hold, one row per customer to contact."""

from __future__ import annotations

import pyarrow as pa

from expectations.contract import Column
from expectations.scores import RISK_TIERS

WINBACK_COLUMNS: tuple[Column, ...] = (
    Column("winback_rank", pa.int64(), "1 = contact first (highest value at risk)", required=True, min_value=1.0,
           unique=True, kind="number"),
    Column("customer_id", pa.string(), "opaque customer id (a keyed hash with --pseudonymise)", required=True,
           unique=True),
    Column("as_of", pa.date32(), "the scored day the list comes from", required=True, kind="date"),
    Column("churn_probability", pa.float64(), "P(no purchase within the horizon)", required=True, min_value=0.0,
           max_value=1.0, kind="number"),
    Column("risk_tier", pa.string(), "high / medium / low", required=True, allowed=RISK_TIERS),
    Column("value_at_risk", pa.float64(), "churn_probability x expected_value (currency)", required=True,
           min_value=0.0, kind="number"),
    Column("expected_value", pa.float64(), "expected spend over the horizon if retained (currency)", required=True,
           min_value=0.0, kind="number"),
    Column("days_since_last_purchase", pa.float64(), "days since the last purchase (empty if never)",
           min_value=0.0, kind="number"),
    Column("main_reason", pa.string(), "the feature behind the top reason"),
    Column("main_reason_text", pa.string(), "the top reason as a sentence"),
    Column("reason_category", pa.string(), "what kind of reason it is (keys the action table)", required=True),
    Column("suggested_action", pa.string(), "what the campaign should do", required=True),
    Column("model_version", pa.string(), "registered model version that scored the customer", required=True),
)

WINBACK_COLUMN_NAMES: list[str] = [c.name for c in WINBACK_COLUMNS]
WINBACK_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, nullable=not c.required) for c in WINBACK_COLUMNS],
                           metadata={"contract": "churn.winback"})
