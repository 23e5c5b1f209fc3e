"""The win-back list contract: what the campaign team's Parquet and CSV hold, one row per customer to contact.

The Parquet file keeps machine-readable columns (WINBACK_COLUMNS); the CSV is the sheet a campaign manager
opens (CAMPAIGN_SHEET: human headers, rounded numbers, in reading order), made from the same rows.
"""

from __future__ import annotations

import pyarrow as pa

from expectations.contract import Column
from expectations.scores import N_REASONS, RISK_TIERS

# the reason categories of the feature records, highest priority first: the first one among a customer's
# reasons chooses the action (models/winback.py says why this order)
REASON_CATEGORIES = ("complaints", "overdue", "spend_falling", "price_sensitive", "disengaged")


def _reason_columns(k: int) -> tuple[Column, ...]:
    return (
        Column(f"reason_{k}_feature", pa.string(), f"feature behind the #{k} reason (empty if fewer reasons)"),
        Column(f"reason_{k}_category", pa.string(), f"the #{k} reason's category", allowed=REASON_CATEGORIES),
        Column(f"reason_{k}_text", pa.string(), f"the #{k} reason as a sentence"),
    )


SELECTION_COLUMNS: tuple[Column, ...] = (
    Column("winback_rank", pa.int64(), "rank in the whole list, target and control (highest value at risk first)", required=True, min_value=1.0,
           unique=True, kind="number"),
    Column("customer_id", pa.string(), "opaque customer id (a keyed hash with --pseudonymise)", required=True,
           unique=True),
    Column("as_of", pa.date32(), "the scored day the list comes from", required=True, kind="date"),
    Column("selection", pa.string(), "who the list takes: 'high tier' or 'top N by value at risk'", required=True),
    Column("churn_probability", pa.float64(), "P(no purchase within the horizon)", required=True, min_value=0.0,
           max_value=1.0, kind="number"),
    Column("risk_score", pa.int64(), "churn_probability on a 0-100 scale, rounded", required=True, min_value=0.0,
           max_value=100.0, kind="number"),
    Column("risk_tier", pa.string(), "high / medium / low", required=True, allowed=RISK_TIERS),
    Column("value_at_risk", pa.float64(), "churn_probability x expected_value, in `currency`", required=True,
           min_value=0.0, kind="number"),
    Column("expected_value", pa.float64(), "expected spend over the horizon if retained, in `currency`",
           required=True, min_value=0.0, kind="number"),
    Column("currency", pa.string(), "ISO 4217 code of the amounts (setting `currency`)", required=True),
    Column("days_since_last_purchase", pa.float64(), "days since the last purchase (empty if never)",
           min_value=0.0, kind="number"),
    Column("days_since_last_event", pa.float64(), "days since the last event of any type", required=True,
           min_value=0.0, kind="number"),
    *[c for k in range(1, N_REASONS + 1) for c in _reason_columns(k)],
    Column("action_category", pa.string(), "the reason category that chose the action ('other' if no reason)",
           required=True, allowed=(*REASON_CATEGORIES, "other")),
    Column("suggested_action", pa.string(), "what the campaign should do", required=True),
    Column("model_version", pa.string(), "registered model version that scored the customer", required=True),
)
GROUPS = ("target", "control")  # contacted by the campaign / held out, to measure what the campaign changed
# the hold-out (version 3): added at the end, after the selection's columns
GROUP_COLUMNS: tuple[Column, ...] = (
    Column("list_id", pa.string(), "the list's id: its scored day and selection (also in the campaign ledger)",
           required=True),
    Column("group", pa.string(), "target (in the CSV, to contact) or control (held out: never contacted, never "
           "in the CSV)", required=True, allowed=GROUPS),
    Column("contact_rank", pa.int64(), "1 = contact first, among the target group (the CSV's Rank); empty for "
           "control", min_value=1.0, kind="number"),
)

WINBACK_COLUMNS: tuple[Column, ...] = (*SELECTION_COLUMNS, *GROUP_COLUMNS)
SELECTION_COLUMN_NAMES: list[str] = [c.name for c in SELECTION_COLUMNS]
WINBACK_COLUMN_NAMES: list[str] = [c.name for c in WINBACK_COLUMNS]
WINBACK_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, nullable=not c.required) for c in WINBACK_COLUMNS],
                           metadata={"contract": "churn.winback", "version": "3"})

# the CSV a campaign manager opens: (header, Parquet column, decimals: None = text, 0 = whole number, 2 = cents);
# "{currency}" in a header is filled in with the list's currency
CAMPAIGN_SHEET: tuple[tuple[str, str, int | None], ...] = (
    ("Rank", "contact_rank", 0),
    ("Customer ID", "customer_id", None),
    ("Risk score (0-100)", "risk_score", 0),
    ("Risk tier", "risk_tier", None),
    ("Value at risk ({currency})", "value_at_risk", 2),
    ("Days since last purchase", "days_since_last_purchase", 0),
    ("Suggested action", "suggested_action", None),
    *[(f"Reason {k}", f"reason_{k}_text", None) for k in range(1, N_REASONS + 1)],
)
