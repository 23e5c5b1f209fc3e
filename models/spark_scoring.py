"""Scoring on Spark (engine 'spark'): the steps of `models.scoring.score_customers`, run by partition.

Per customer, in each partition (`mapInPandas`): P(churn), expected value, value at risk, tier and the churn-time
curve (`risk_columns`, `curve_columns_of`); over everyone, by Spark's window functions: the risk rank and which
customers get exact (TreeSHAP) or approximate (Saabas) reasons, ties broken by customer id as the single-machine
path breaks them; per customer again: the reason codes (`pred_contribs`) and the contract's columns
(`reason_columns`, `contract_frame`). The model and the curve travel to the executors inside the functions (the
same XGBoost artifacts the driver scores with); reason values are judged against `peers`, every active customer's
feature values, broadcast to the executors. The result is the scores contract's frame, the same values as the single-machine
path's, collected on the driver (which validates and publishes it).
"""

from __future__ import annotations

import pandas as pd

from expectations.scores import RISK_TIERS, SCORE_COLUMN_NAMES, SCORE_SCHEMA
from features.season import season_values
from models.curve import curve_columns
from models.scoring import (
    ScoringPolicy,
    contract_frame,
    curve_columns_of,
    reason_columns,
    require_buildable,
    risk_columns,
)

RISK = ("churn_probability", "expected_value", "value_at_risk")
CURVE_NUMBERS = (*curve_columns(), "median_days_to_next_purchase")


def score_on_spark(features, model, as_of: pd.Timestamp, policy: ScoringPolicy, model_meta: dict,
                   scored_at: pd.Timestamp, peers: pd.DataFrame, curve=None) -> pd.DataFrame:
    """`features`: a Spark DataFrame of the feature query (customer_id and the feature columns); `peers`: the
    feature table (pandas, indexed by customer_id) the reason values are judged against. Returns what
    `score_customers` returns for the same customers."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import DateType, DoubleType, StringType, StructField, StructType

    booster = model.get_booster()
    season = season_values([as_of]).iloc[0]  # the season inputs of the day, the same for every customer
    peers = peers.assign(**season)
    features = features.withColumns({c: F.lit(float(v)) for c, v in season.items()})
    names = require_buildable(model, "model", list(peers.columns))
    feature_names = list(peers.columns)
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    sdf = features.select(F.col("customer_id").cast("string").alias("customer_id"),
                          *[F.col(f).cast("double").alias(f) for f in feature_names])

    def per_customer(batches):
        for pdf in batches:
            feats = pdf.set_index("customer_id")
            risk = risk_columns(booster, names, feats, policy)
            curve_cols = curve_columns_of(curve, feats, as_of)
            out = pd.concat([feats, risk, curve_cols], axis=1).reset_index()
            out["expected_next_purchase_date"] = out["expected_next_purchase_date"].astype(object)
            yield out

    first = StructType([StructField("customer_id", StringType()), *[StructField(f, DoubleType())
                                                                    for f in feature_names],
                        *[StructField(c, DoubleType()) for c in RISK], StructField("risk_tier", StringType()),
                        *[StructField(c, DoubleType()) for c in CURVE_NUMBERS],
                        StructField("expected_next_purchase_date", DateType())])
    risk = sdf.mapInPandas(per_customer, first)
    # over everyone: one ordering each, ties by customer id as on one machine (a window over everyone runs in one
    # partition: the one step here that does not spread over the cluster)
    by_risk = Window.orderBy(F.col("churn_probability").desc(), F.col("customer_id"))
    by_value = Window.orderBy(F.col("value_at_risk").desc(), F.col("customer_id"))
    ranked = risk.withColumn("risk_rank", F.row_number().over(by_risk).cast("long"))
    if policy.reasons:
        exact = F.row_number().over(by_value) <= F.lit(policy.exact_reasons_top_n)
        explain = F.lit(True) if policy.explain_low_risk else F.col("risk_tier") != F.lit(RISK_TIERS[-1])
        ranked = ranked.withColumn("exact", exact).withColumn("approximate", ~F.col("exact") & explain)
    else:
        ranked = ranked.withColumn("exact", F.lit(False)).withColumn("approximate", F.lit(False))

    shared = _broadcast(features, peers)  # sent to each executor once, not with every task

    def per_customer_reasons(batches):
        everyone = shared if isinstance(shared, pd.DataFrame) else shared.value
        for pdf in batches:
            pdf = pdf.set_index("customer_id")
            reasons = reason_columns(booster, names, pdf[feature_names], pdf, peers=everyone,
                                     currency=policy.currency)
            curve_cols = pdf[[*CURVE_NUMBERS, "expected_next_purchase_date"]]
            yield contract_frame(pdf[feature_names], pdf, reasons, curve_cols, as_of, policy, model_meta,
                                 scored_at).reset_index(drop=True)

    scored = ranked.mapInPandas(per_customer_reasons, from_arrow_schema(SCORE_SCHEMA))
    out = scored.toArrow().to_pandas()
    out["expected_next_purchase_date"] = out["expected_next_purchase_date"].astype(object).where(
        out["expected_next_purchase_date"].notna(), None)
    return out.sort_values("risk_rank").reset_index(drop=True)[SCORE_COLUMN_NAMES]


def _broadcast(frame, value):
    """`value` as a Spark broadcast variable of `frame`'s session, or `value` itself where there is no SparkContext
    (Spark Connect: it then travels with each task)."""
    try:
        return frame.sparkSession.sparkContext.broadcast(value)
    except Exception:  # noqa: BLE001 - Spark Connect sessions have no SparkContext
        return value
