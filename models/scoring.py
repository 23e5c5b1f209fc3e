"""Score customers: P(churn), value at risk, tiers, ranks and reason codes (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from expectations.scores import N_REASONS, SCHEMA_VERSION, SCORE_COLUMN_NAMES
from models.reasons import top_reasons


@dataclass(frozen=True)
class ScoringPolicy:
    """How scores become tiers and how much exact explanation to buy."""

    horizon_days: int = 90
    tier_high: float = 0.7
    tier_medium: float = 0.4
    exact_reasons_top_n: int = 50_000  # exact TreeSHAP for the top N by value at risk; approximate for the rest
    reasons: bool = True  # False: no reason codes at all (the reason columns stay empty)
    # Low-risk customers outside the exact budget are not at risk: by default they get no reasons
    # (reasons_method "none"), which halves the cost of explaining a large base. True explains them too.
    explain_low_risk: bool = False


def expected_value(features: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Expected spend over the horizon if retained: the last year's daily spend rate x horizon.

    The rate divides by the customer's tenure when it is shorter than a year (at least 30 days),
    so new customers are not undervalued.
    """
    days = features["tenure_days"].clip(lower=30.0, upper=365.0)
    return (features["spend_365d"].clip(lower=0.0) / days * horizon_days).rename("expected_value")


def risk_tier(p: pd.Series, high: float, medium: float) -> pd.Series:
    return pd.Series(np.where(p >= high, "high", np.where(p >= medium, "medium", "low")), index=p.index)


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
                    model_meta: dict, scored_at: pd.Timestamp) -> pd.DataFrame:
    """The scored frame in contract column order (see expectations/scores.py), one row per customer.

    `model` is an XGBClassifier; `features` is indexed by customer_id and holds at least the model's features.
    """
    import xgboost as xgb

    booster = model.get_booster()
    names = list(booster.feature_names)
    missing = [f for f in names if f not in features.columns]
    if missing:
        raise ValueError(f"the model needs features that were not built: {missing}")
    X = features[names].astype("float64")
    margin = booster.predict(xgb.DMatrix(X, feature_names=names), output_margin=True)
    p = pd.Series(1.0 / (1.0 + np.exp(-margin)), index=X.index)
    ev = expected_value(features, policy.horizon_days)
    var = p * ev
    tier = risk_tier(p, policy.tier_high, policy.tier_medium)
    exact, approximate = np.zeros(len(X), dtype=bool), np.zeros(len(X), dtype=bool)
    if policy.reasons:
        exact[np.argsort(-var.to_numpy(), kind="stable")[: policy.exact_reasons_top_n]] = True
        approximate = ~exact & (policy.explain_low_risk | (tier != "low").to_numpy())
    explained = exact | approximate  # reasons are computed for these rows only; the others stay empty
    contrib = contributions(booster, X[explained], exact[explained], approximate[explained])
    reasons = top_reasons(contrib.drop(columns="_bias"), features.loc[X.index[explained]], N_REASONS)
    reasons = reasons.reindex(X.index)
    for c in [c for c in reasons.columns if c.endswith(("_feature", "_text"))]:
        reasons[c] = reasons[c].astype(object).where(reasons[c].notna(), None)  # empty text is None, not NaN

    out = pd.DataFrame(index=X.index)
    out["schema_version"] = np.int32(SCHEMA_VERSION)
    out["customer_id"] = X.index.astype(str)
    out["as_of"] = pd.Timestamp(as_of).date()
    out["churn_probability"] = p
    out["risk_tier"] = tier
    out["risk_rank"] = p.rank(method="first", ascending=False).astype("int64")
    out["expected_value"] = ev
    out["value_at_risk"] = var
    out["days_since_last_purchase"] = features["days_since_last_purchase"]
    out["days_since_last_event"] = features["days_since_last_event"]
    out = out.join(reasons)
    out["reasons_method"] = np.where(exact, "exact", np.where(approximate, "approximate", "none"))
    out["horizon_days"] = np.int32(policy.horizon_days)
    out["model_name"] = model_meta["model_name"]
    out["model_version"] = str(model_meta["model_version"])
    out["run_id"] = model_meta["run_id"]
    out["scored_at"] = scored_at
    out = out.sort_values("risk_rank").reset_index(drop=True)
    return out[SCORE_COLUMN_NAMES]
