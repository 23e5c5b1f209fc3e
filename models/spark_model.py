"""The churn model and the label-fitted baselines fitted by Spark over a Spark DataFrame of training snapshots
(engine 'spark'): XGBoost's Spark estimator, Spark ML's logistic regression, a Spark aggregation for the recency rule.

Each returns the same Python object the single-machine fit returns (`models.train.fit_on_driver`), built from what
Spark fitted: the churn model is a plain XGBoost booster (one artifact, scored by either engine), the logistic RFM
a scikit-learn pipeline holding Spark's scaler and coefficients, the recency rule its two group rates. So
evaluation, MLflow logging and scoring read one kind of model whichever engine trained it.
"""

from __future__ import annotations

import logging

import numpy as np

from features.purchase_history import FREQUENCY as REPEAT_DAYS
from models.baselines import FREQUENCY, MONETARY, RECENCY, TENURE, LogisticRFM, RecencyRule
from models.churn_model import DEFAULT_PARAMS, EARLY_STOPPING_SHARE, ChurnModel, early_stopping_mask
from models.train import Fitted

log = logging.getLogger("churn.train")

ES_COLUMN = "early_stopping"
LABEL = "churned_int"


def with_early_stopping_column(sdf, share: float = EARLY_STOPPING_SHARE):
    """`sdf` with a boolean ES_COLUMN: the driver's customer-level hold-out (`early_stopping_mask`, every snapshot of
    a held-out customer), computed by the same function in a pandas UDF, so both engines hold out the same rows."""
    import pandas as pd
    from pyspark.sql import functions as F

    def held_out(ids):  # a scalar pandas UDF: a batch of ids in, their flags out
        return pd.Series(early_stopping_mask(pd.Index(ids), share), index=ids.index)

    held_out.__annotations__ = {"ids": pd.Series, "return": pd.Series}  # this module postpones annotations
    return sdf.withColumn(ES_COLUMN, F.pandas_udf(held_out, "boolean")(F.col("customer_id")))


def fit_on_spark(sdf, features: list[str], *, seed: int, horizon_days: int, model_params: dict | None = None,
                 num_workers: int = 2) -> Fitted:
    """The model (early-stopping on the customer-level hold-out), the recency rule and logistic RFM fitted over the
    training snapshots `sdf` (a Spark DataFrame with the feature columns, `churned` and `customer_id`)."""
    from pyspark.sql import functions as F

    others = sorted({RECENCY, FREQUENCY, MONETARY, TENURE, REPEAT_DAYS, "customer_id"} - set(features))
    sdf = with_early_stopping_column(sdf.select(*_model_columns(features), *others,
                                                F.col("churned").cast("int").alias(LABEL))).cache()
    try:
        counts = {bool(r[ES_COLUMN]): int(r["count"]) for r in sdf.groupBy(ES_COLUMN).count().collect()}
        model = fit_churn_model(sdf, features, seed=seed, params=model_params, num_workers=num_workers)
        log.info("XGBoost on Spark (%d workers): %d trees kept by early stopping", num_workers,
                 model.best_iteration_ + 1)
        # the baselines read their own columns, whatever feature set the model is given, and every training row
        baselines = {f"recency_rule_{horizon_days}d": fit_recency_rule(sdf, horizon_days),
                     "logistic_rfm": fit_logistic_rfm(sdf, seed)}
        repeat = F.col(REPEAT_DAYS).cast("double")
        never = sdf.where(repeat.isNull() | F.isnan(repeat)).agg(F.avg(LABEL)).first()[0]
    finally:
        sdf.unpersist()
    return Fitted(model, baselines, 1.0 if never is None else float(never),
                  {"train_rows": counts.get(False, 0), "early_stopping_rows": counts.get(True, 0)})


def _model_columns(features: list[str]) -> list:
    """The model's inputs as double columns, NULL read as NaN ("missing", as on the driver)."""
    from pyspark.sql import functions as F

    return [F.coalesce(F.col(f).cast("double"), F.lit(float("nan"))).alias(f) for f in features]


def spread_over_workers(sdf, num_workers: int):
    """`sdf` dealt round-robin into one partition per XGBoost worker. XGBoost's estimator gives each worker one
    partition and repartitions only when their numbers differ: the training rows filtered out of the stored
    snapshots (train rows first, then validation) could sit in one of two partitions, leaving one worker all the rows
    and the other none, which trained on one worker (the model of the single-machine fit, bit for bit)."""
    return sdf.repartition(num_workers)


def _estimator(features: list[str], *, seed: int, num_workers: int, **params):
    """XGBoost's Spark classifier over the feature columns (NaN for missing) and LABEL, quiet, with `params` (XGBoost's
    sklearn-style names) over nothing else: the one spelling of the fit and the refit."""
    from xgboost.spark import SparkXGBClassifier

    return SparkXGBClassifier(features_col=list(features), label_col=LABEL, num_workers=num_workers,
                              eval_metric="logloss", missing=np.nan, random_state=seed, verbosity=0, verbose=False,
                              **params)


def fit_churn_model(sdf, features: list[str], *, seed: int, params: dict | None, num_workers: int) -> ChurnModel:
    """XGBoost's Spark estimator over `sdf` (features as double columns, NaN for missing; LABEL; ES_COLUMN), early
    stopping on the ES_COLUMN rows; the booster cut at the best iteration, as `ChurnModel.fit` does."""
    estimator = _estimator(features, seed=seed, num_workers=num_workers, validation_indicator_col=ES_COLUMN,
                           **{**DEFAULT_PARAMS, **(params or {})})
    booster = estimator.fit(spread_over_workers(sdf, num_workers)).get_booster()
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    return ChurnModel.from_booster(booster, features, best_iteration=best, seed=seed, **(params or {}))


def refit_on_spark(sdf, model: ChurnModel, *, num_workers: int) -> ChurnModel:
    """`model` refitted over `sdf` (the training and validation snapshots) with its tree count, no early stopping:
    `ChurnModel.refit` on Spark."""
    from pyspark.sql import functions as F

    sdf = sdf.select(*_model_columns(model.features), F.col("churned").cast("int").alias(LABEL))
    params = {k: v for k, v in model.params.items() if k != "early_stopping_rounds"}
    estimator = _estimator(model.features, seed=model.seed, num_workers=num_workers,
                           **{**params, "n_estimators": model.best_iteration_ + 1})
    booster = estimator.fit(spread_over_workers(sdf, num_workers)).get_booster()
    out = ChurnModel.from_booster(booster, model.features, best_iteration=model.best_iteration_, seed=model.seed,
                                  **model.params)
    out.refit_rows_ = sdf.count()
    return out


def fit_recency_rule(sdf, horizon_days: int) -> RecencyRule:
    """The recency rule's two churn rates, counted by Spark (same flag as `RecencyRule.flag`: never bought counts
    as flagged)."""
    from pyspark.sql import functions as F

    flagged = ~(F.col(RECENCY) <= F.lit(float(horizon_days)))
    flagged = F.coalesce(flagged, F.lit(True))  # NULL or NaN recency: never bought
    rows = sdf.groupBy(flagged.alias("flag")).agg(F.avg(LABEL).alias("rate")).collect()
    rates = {bool(r["flag"]): float(r["rate"]) for r in rows}
    rule = RecencyRule(horizon_days)
    rule.rate_flagged_, rule.rate_unflagged_ = rates.get(True, 1.0), rates.get(False, 0.0)
    return rule


def fit_logistic_rfm(sdf, seed: int) -> LogisticRFM:
    """Spark ML's logistic regression on LogisticRFM's design (log recency, frequency and spend, standardised),
    returned as a LogisticRFM whose pipeline holds Spark's means, scales and coefficients. The penalty is
    scikit-learn's default (L2 with C = 1, i.e. Spark's regParam = 1 / rows), so both engines fit the same model."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.sql import functions as F
    from sklearn.linear_model import LogisticRegression as SkLogistic
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler as SkScaler

    def _nan_to_null(c):
        v = F.col(c).cast("double")
        return F.when(F.isnan(v), F.lit(None)).otherwise(v)

    recency = F.coalesce(_nan_to_null(RECENCY), _nan_to_null(TENURE) + F.lit(365.0))
    design = sdf.select(
        F.log1p(F.greatest(recency, F.lit(0.0))).alias("r"), F.log1p(_nan_to_null(FREQUENCY)).alias("f"),
        F.log1p(F.greatest(_nan_to_null(MONETARY), F.lit(0.0))).alias("m"), F.col(LABEL))
    assembled = VectorAssembler(inputCols=["r", "f", "m"], outputCol="raw", handleInvalid="error").transform(design)
    scaler = StandardScaler(inputCol="raw", outputCol="x", withMean=True, withStd=True).fit(assembled)
    scaled = scaler.transform(assembled).cache()
    n = scaled.count()
    fitted = LogisticRegression(featuresCol="x", labelCol=LABEL, regParam=1.0 / max(n, 1), elasticNetParam=0.0,
                                standardization=False, maxIter=1000).fit(scaled)
    scaled.unpersist()
    sk_scaler = SkScaler()
    sk_scaler.mean_ = scaler.mean.toArray()
    sk_scaler.scale_ = scaler.std.toArray()
    sk_scaler.var_ = sk_scaler.scale_ ** 2
    sk_scaler.n_features_in_ = 3
    lr = SkLogistic()
    lr.coef_ = fitted.coefficients.toArray().reshape(1, -1)
    lr.intercept_ = np.array([fitted.intercept])
    lr.classes_ = np.array([0, 1])
    lr.n_features_in_ = 3
    out = LogisticRFM(seed)
    out.model_ = make_pipeline(sk_scaler, lr)
    return out
