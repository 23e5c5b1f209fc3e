"""Score customers: P(churn), value at risk, tiers, ranks and reason codes (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.errors import UserError
from expectations.scores import (
    CURVE_HORIZONS,
    N_REASONS,
    NEXT_PURCHASE_DATE_MAX_DAYS,
    REASON_METHODS,
    RISK_TIERS,
    SCHEMA_VERSION,
    SCORE_COLUMN_NAMES,
)
from features.season import SEASON_FEATURES, with_season
from models.curve import curve_columns, lognormal_curve
from models.reasons import top_reasons

EXACT, APPROXIMATE, NONE = REASON_METHODS


@dataclass(frozen=True)
class ScoringPolicy:
    """How scores become tiers and how much exact explanation to buy."""

    horizon_days: int
    tier_high: float
    tier_medium: float
    exact_reasons_top_n: int  # exact TreeSHAP for the top N by value at risk; approximate for the rest
    reasons: bool  # False: no reason codes at all (the reason columns stay empty)
    # Low-risk customers outside the exact budget are not at risk: without this they get no reasons
    # (reasons_method "none"), which halves the cost of explaining a large base. True explains them too.
    explain_low_risk: bool
    currency: str  # ISO 4217 code that labels amounts in reason texts


def expected_value(features: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Expected spend over the horizon if retained: the last year's daily spend rate x horizon.

    The rate divides by the customer's tenure when it is shorter than a year (at least 30 days),
    so new customers are not undervalued.
    """
    days = features["tenure_days"].clip(lower=30.0, upper=365.0)
    return (features["spend_365d"].clip(lower=0.0) / days * horizon_days).rename("expected_value")


def risk_tier(p: pd.Series, high: float, medium: float) -> pd.Series:
    """The tier of each probability: high at or above `high`, medium at or above `medium`, else low."""
    top, middle, bottom = RISK_TIERS
    return pd.Series(np.where(p >= high, top, np.where(p >= medium, middle, bottom)), index=p.index)


class IncompatibleModel(UserError, RuntimeError):
    """The champion expects features this code does not build."""


def require_buildable(model, label: str, buildable: list[str]) -> list[str]:
    """The model's feature names; raises IncompatibleModel if any of them is not in `buildable`."""
    names = list(model.get_booster().feature_names or [])
    unknown = [f for f in names if f not in buildable]
    if unknown or not names:
        raise IncompatibleModel(f"champion {label} expects features {unknown or '(none recorded)'} that this code "
                                f"does not build; retrain with `churn train`")
    return names


def tier_summary(scores: pd.DataFrame) -> dict:
    """Customers and value at risk per tier, every tier present (zero when empty)."""
    g = scores.groupby("risk_tier")
    return {t: {"customers": int(g.size().get(t, 0)), "value_at_risk": float(g["value_at_risk"].sum().get(t, 0.0))}
            for t in RISK_TIERS}


def scoring_summary(scores: pd.DataFrame, day: str, model_version) -> dict:
    """What a scoring run reports: counts, tiers, value at risk, reasons by method, the model used."""
    by_method = scores["reasons_method"].value_counts()
    return {"as_of": day, "customers": len(scores), "tiers": tier_summary(scores),
            "value_at_risk": float(scores["value_at_risk"].sum()),
            "exact_reasons": int(by_method.get(EXACT, 0)),
            "reasons_by_method": {str(k): int(v) for k, v in by_method.items()},
            "model_name": model_version.name, "model_version": str(model_version.version),
            "model_run_id": model_version.run_id}


def curve_columns_of(curve, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The scores' churn-time curve columns per customer (index as `features`): P(no purchase within each curve
    horizon), the median days to the next purchase and its date (empty beyond NEXT_PURCHASE_DATE_MAX_DAYS); all
    empty without a curve model."""
    names = [*curve_columns(), "median_days_to_next_purchase", "expected_next_purchase_date"]
    if curve is None:
        out = pd.DataFrame(np.nan, index=features.index, columns=names)
        out["expected_next_purchase_date"] = None
        return out
    unknown = [f for f in curve.features if f not in features.columns]
    if unknown:
        raise IncompatibleModel(f"the champion's churn-time curve expects features {unknown} that this code does not "
                                "build; retrain with `churn train`")
    median = curve.location(features)
    out = lognormal_curve(median, CURVE_HORIZONS, curve.scale, index=features.index)
    out[[c for h, c in zip(CURVE_HORIZONS, curve_columns()) if h not in curve.served_horizons()]] = np.nan
    out["median_days_to_next_purchase"] = median
    # a median far beyond the date's limit (centuries, for a customer all but gone) must not overflow the instant
    when = pd.Timestamp(as_of).tz_convert("UTC") + pd.to_timedelta(
        np.minimum(median, NEXT_PURCHASE_DATE_MAX_DAYS + 1), unit="D")
    out["expected_next_purchase_date"] = [d.date() if m <= NEXT_PURCHASE_DATE_MAX_DAYS else None
                                          for d, m in zip(when, median)]
    return out


def contributions(booster, X: pd.DataFrame, exact: np.ndarray,
                  approximate: np.ndarray | None = None) -> pd.DataFrame:
    """Per-feature contributions to the log-odds plus the bias column `_bias`.

    `exact` rows use TreeSHAP, `approximate` rows (default: all the others) Saabas; any other row stays 0.
    """
    import xgboost as xgb

    names = list(X.columns)
    out = np.zeros((len(X), len(names) + 1))
    approximate = ~exact if approximate is None else approximate & ~exact
    for mask, approx in ((exact, False), (approximate, True)):
        if mask.any():
            d = xgb.DMatrix(X[mask], feature_names=names)
            out[mask] = booster.predict(d, pred_contribs=True, approx_contribs=approx)
    return pd.DataFrame(out, index=X.index, columns=[*names, "_bias"])


def score_customers(model, features: pd.DataFrame, as_of: pd.Timestamp, policy: ScoringPolicy,
                    model_meta: dict, scored_at: pd.Timestamp, curve=None) -> pd.DataFrame:
    """The scored frame in contract column order (see expectations/scores.py), one row per customer.

    `model` is an XGBClassifier; `features` is indexed by customer_id and holds at least the model's customer
    features (the season inputs of `as_of` are added here, `features.season`).
    `curve`: the churn-time curve model of the same training run (models.curve.AftCurve), or None (the curve
    columns stay empty). The steps are the ones an engine that scores by partition runs (models/spark_scoring.py):
    per customer `risk_columns`, over everyone `ranks_and_explained`, per customer `reason_columns` and
    `contract_frame`.
    """
    booster = model.get_booster()
    features = with_season(features, as_of)
    names = require_buildable(model, "model", list(features.columns))
    risk = risk_columns(booster, names, features, policy)
    ranked = ranks_and_explained(risk, policy)
    reasons = reason_columns(booster, names, features, ranked, peers=features, currency=policy.currency)
    out = contract_frame(features, ranked, reasons, curve_columns_of(curve, features, as_of), as_of, policy,
                         model_meta, scored_at)
    return out.sort_values("risk_rank").reset_index(drop=True)[SCORE_COLUMN_NAMES]


def risk_columns(booster, names: list[str], features: pd.DataFrame, policy: ScoringPolicy) -> pd.DataFrame:
    """Per customer (index as `features`): churn_probability, expected_value, value_at_risk, risk_tier."""
    import xgboost as xgb

    X = features[names].astype("float64")
    margin = booster.predict(xgb.DMatrix(X, feature_names=names), output_margin=True)
    p = pd.Series(1.0 / (1.0 + np.exp(-margin)), index=X.index)
    ev = expected_value(features, policy.horizon_days)
    return pd.DataFrame({"churn_probability": p, "expected_value": ev, "value_at_risk": p * ev,
                         "risk_tier": risk_tier(p, policy.tier_high, policy.tier_medium)}, index=X.index)


def ranks_and_explained(risk: pd.DataFrame, policy: ScoringPolicy) -> pd.DataFrame:
    """`risk` (in customer order) with risk_rank (1 = highest P(churn); ties in customer order) and the reasons to
    compute: `exact` (TreeSHAP) for the top exact_reasons_top_n by value at risk (ties in customer order),
    `approximate` (Saabas) for the other explained customers."""
    p, var = risk["churn_probability"], risk["value_at_risk"]
    exact, approximate = np.zeros(len(risk), dtype=bool), np.zeros(len(risk), dtype=bool)
    if policy.reasons:
        exact[np.argsort(-var.to_numpy(), kind="stable")[: policy.exact_reasons_top_n]] = True
        approximate = ~exact & (policy.explain_low_risk | (risk["risk_tier"] != RISK_TIERS[-1]).to_numpy())
    return risk.assign(risk_rank=p.rank(method="first", ascending=False).astype("int64"), exact=exact,
                       approximate=approximate)


def reason_columns(booster, names: list[str], features: pd.DataFrame, ranked: pd.DataFrame, *,
                   peers: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The reason columns (index as `features`) of the customers `ranked` marks exact or approximate; the others
    empty. Values are judged against `peers`: every active customer scored today, not only the explained ones."""
    exact, approximate = ranked["exact"].to_numpy(), ranked["approximate"].to_numpy()
    explained = exact | approximate
    X = features[names].astype("float64")
    contrib = contributions(booster, X[explained], exact[explained], approximate[explained])
    reasons = top_reasons(contrib.drop(columns=["_bias", *SEASON_FEATURES], errors="ignore"),
                          features.loc[X.index[explained]], N_REASONS,
                          peers=peers, currency=currency).reindex(X.index)
    for c in [c for c in reasons.columns if c.endswith(("_feature", "_text"))]:
        reasons[c] = reasons[c].astype(object).where(reasons[c].notna(), None)  # empty text is None, not NaN
    return reasons


def contract_frame(features: pd.DataFrame, ranked: pd.DataFrame, reasons: pd.DataFrame, curve: pd.DataFrame,
                   as_of: pd.Timestamp, policy: ScoringPolicy, model_meta: dict,
                   scored_at: pd.Timestamp) -> pd.DataFrame:
    """The contract's columns for these customers (index as `features`), in contract order, not sorted."""
    out = pd.DataFrame(index=features.index)
    out["schema_version"] = np.int32(SCHEMA_VERSION)
    out["customer_id"] = features.index.astype(str)
    out["as_of_time"] = pd.Timestamp(as_of).tz_convert("UTC")
    for c in ("churn_probability", "risk_tier", "risk_rank", "expected_value", "value_at_risk"):
        out[c] = ranked[c]
    out["days_since_last_purchase"] = features["days_since_last_purchase"]
    out["days_since_last_event"] = features["days_since_last_event"]
    out = out.join(reasons)
    out["reasons_method"] = np.where(ranked["exact"], EXACT, np.where(ranked["approximate"], APPROXIMATE, NONE))
    out["horizon_days"] = np.int32(policy.horizon_days)
    out["model_name"] = model_meta["model_name"]
    out["model_version"] = str(model_meta["model_version"])
    out["run_id"] = model_meta["run_id"]
    out["scored_at"] = scored_at
    return out.join(curve)[SCORE_COLUMN_NAMES]
