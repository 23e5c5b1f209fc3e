"""The scored-Parquet contract: what downstream systems may rely on (schema_version 2).

Changing a column's name, type or meaning is a breaking change and bumps SCHEMA_VERSION; adding a
nullable column at the end is not. The GX suite `scores.suite.json` and the Arrow schema (with each
column's description in its field metadata) come from here.

Version 2: the files live in hive partitions `as_of=YYYY-MM-DD/`, and the folder key is no column of the
file (version 1 had an `as_of` date32 column too, which pandas and pyarrow refused to merge with the folder
key they read as text); the cutoff instant is kept in full as `as_of_time`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from expectations.contract import Column, suite_dict

# the churn-time curve's horizons (days): the scores' p_no_purchase_{h}d columns
CURVE_HORIZONS = (30, 60, 90, 180)
NEXT_PURCHASE_DATE_MAX_DAYS = 730  # a median further away leaves expected_next_purchase_date empty

SCHEMA_VERSION = 2
# The hive folder key of a day's scores: `as_of=YYYY-MM-DD/` (the UTC date of as_of_time); never a column of
# the file, so every reader of the folder adds it as a column of its own.
PARTITION_KEY = "as_of"
PARTITION_FIELD = pa.field(PARTITION_KEY, pa.date32(), nullable=False,
                           metadata={"description": "the day scored: the UTC date of as_of_time (folder key)"})
RISK_TIERS = ("high", "medium", "low")  # from most to least at risk
REASON_METHODS = ("exact", "approximate", "none")  # TreeSHAP, Saabas, no reasons
N_REASONS = 3
SUITE_NAME = "scores"
SCORES_SUITE = Path(__file__).resolve().parent / "scores.suite.json"


def _reason_columns(k: int) -> tuple[Column, ...]:
    return (
        Column(f"reason_{k}_feature", pa.string(), f"feature behind the #{k} reason (pushes towards churn)"),
        Column(f"reason_{k}_value", pa.float64(), "that feature's value for the customer"),
        Column(f"reason_{k}_contribution", pa.float64(), "its contribution to the log-odds of churn (> 0)",
               min_value=0.0, kind="number"),
        Column(f"reason_{k}_text", pa.string(), f"the #{k} reason as a plain-language sentence"),
    )


SCORE_COLUMNS: tuple[Column, ...] = (
    Column("schema_version", pa.int32(), "version of this contract", required=True, min_value=SCHEMA_VERSION,
           max_value=SCHEMA_VERSION, kind="number"),
    Column("customer_id", pa.string(), "opaque customer id", required=True, unique=True, identifier=True),
    Column("as_of_time", pa.timestamp("us", tz="UTC"), "cutoff instant the features were built at; its UTC date "
           "is the folder key as_of", required=True, kind="timestamp"),
    Column("churn_probability", pa.float64(), "P(no purchase within the horizon after as_of)", required=True,
           min_value=0.0, max_value=1.0, kind="number"),
    Column("risk_tier", pa.string(), "high / medium / low (thresholds in settings)", required=True,
           allowed=RISK_TIERS),
    Column("risk_rank", pa.int64(), "1 = most likely to churn", required=True, min_value=1.0, unique=True,
           kind="number"),
    Column("expected_value", pa.float64(), "expected spend over the horizon if retained (currency)",
           required=True, min_value=0.0, kind="number"),
    Column("value_at_risk", pa.float64(), "churn_probability x expected_value (currency)", required=True,
           min_value=0.0, kind="number"),
    Column("days_since_last_purchase", pa.float64(), "days since the last purchase (empty if never)",
           min_value=0.0, kind="number"),
    Column("days_since_last_event", pa.float64(), "days since the last event of any type", required=True,
           min_value=0.0, kind="number"),
    *[c for k in range(1, N_REASONS + 1) for c in _reason_columns(k)],
    Column("reasons_method", pa.string(), "exact (TreeSHAP), approximate (Saabas) or none",
           required=True, allowed=REASON_METHODS),
    Column("horizon_days", pa.int32(), "the churn horizon the model predicts", required=True, min_value=1.0,
           kind="number"),
    Column("model_name", pa.string(), "registered model name", required=True),
    Column("model_version", pa.string(), "registered model version", required=True),
    Column("run_id", pa.string(), "MLflow run that trained the model", required=True),
    Column("scored_at", pa.timestamp("us", tz="UTC"), "when this file was produced", required=True, kind="timestamp"),
    # added without a version bump (nullable, at the end): the churn-time curve of issue #13, empty when the model's
    # training run has no curve model (trained before it existed)
    *[Column(f"p_no_purchase_{h}d", pa.float64(), f"P(no purchase - the churn label's activity - within {h} days "
             "after as_of), from the churn-time curve model; never rises with the days", min_value=0.0, max_value=1.0,
             kind="number") for h in CURVE_HORIZONS],
    Column("median_days_to_next_purchase", pa.float64(), "median days from as_of to the next purchase (the churn-time "
           "curve's 50 % point)", min_value=0.0, kind="number"),
    Column("expected_next_purchase_date", pa.date32(), "UTC date of as_of + median_days_to_next_purchase; empty "
           f"when that is more than {NEXT_PURCHASE_DATE_MAX_DAYS} days away (not expected within two years)",
           kind="date"),
)

SCORE_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, nullable=not c.required,
                                   metadata={"description": c.description}) for c in SCORE_COLUMNS],
                         metadata={"schema_version": str(SCHEMA_VERSION), "contract": "churn.scores"})
SCORE_COLUMN_NAMES = [c.name for c in SCORE_COLUMNS]


def scores_suite_dict() -> dict:
    return suite_dict(SCORE_COLUMNS, SUITE_NAME, "expectations/scores.py")
