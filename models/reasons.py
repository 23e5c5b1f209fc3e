"""Reason codes: the features that push a customer's churn score up, in plain language."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# feature -> what kind of reason it is; the win-back action table is keyed by these categories
REASON_CATEGORY: dict[str, str] = {
    "days_since_last_purchase": "overdue", "overdue_ratio": "overdue", "days_since_last_event": "overdue",
    "purchase_gap_mean_days": "overdue", "purchase_gap_std_days": "overdue",
    "days_since_last_visit": "disengaged", "visits_30d": "disengaged", "visits_90d": "disengaged",
    "visits_365d": "disengaged", "visit_trend_90d": "disengaged", "tenure_days": "disengaged",
    "purchases_30d": "spend_falling", "purchases_90d": "spend_falling", "purchases_365d": "spend_falling",
    "purchases_total": "spend_falling", "spend_30d": "spend_falling", "spend_90d": "spend_falling",
    "spend_365d": "spend_falling", "avg_basket_365d": "spend_falling", "purchase_trend_90d": "spend_falling",
    "spend_trend_90d": "spend_falling",
    "complaints_90d": "complaints", "complaints_365d": "complaints", "complaint_share_365d": "complaints",
    "returns_365d": "complaints", "return_rate_365d": "complaints",
    "discount_share_365d": "price_sensitive",
}


def _n(v: float) -> str:
    return f"{v:.0f}"


def _window(feature: str) -> str:
    return feature.rsplit("_", 1)[-1].removesuffix("d")


def reason_text(feature: str, row) -> str:
    """One sentence saying why this feature raises the customer's churn risk."""
    v = row.get(feature, np.nan)
    missing = v is None or (isinstance(v, float) and math.isnan(v))
    gap = row.get("purchase_gap_mean_days", np.nan)
    overdue = row.get("overdue_ratio", np.nan)
    if feature == "days_since_last_purchase":
        if missing:
            return "has never bought"
        text = f"no purchase for {_n(v)} days"
        if overdue == overdue and overdue >= 1.5:
            text += f", {overdue:.1f}x longer than usual"
        return text
    if feature == "overdue_ratio":
        if missing:
            return "no regular buying rhythm yet"
        return f"{v:.1f}x their usual {_n(gap)} days between purchases"
    if missing:
        return {"days_since_last_visit": "has never visited",
                "avg_basket_365d": "no purchase in the last year",
                "purchase_gap_mean_days": "fewer than two purchases so far",
                "purchase_gap_std_days": "too few purchases for a rhythm"}.get(feature, f"{feature} unknown")
    if feature == "days_since_last_event":
        return f"no activity at all for {_n(v)} days"
    if feature == "days_since_last_visit":
        return f"no visit for {_n(v)} days"
    if feature == "tenure_days":
        return f"customer for only {_n(v)} days" if v < 180 else f"customer for {_n(v)} days"
    if feature.startswith("visits_"):
        return f"{_n(v)} visits in the last {_window(feature)} days"
    if feature.startswith("purchases_"):
        return (f"{_n(v)} purchases in total" if feature == "purchases_total"
                else f"{_n(v)} purchases in the last {_window(feature)} days")
    if feature.startswith("spend_") and not feature.endswith("trend_90d"):
        return f"spent {v:.2f} in the last {_window(feature)} days"
    if feature.endswith("_trend_90d"):
        what = feature.split("_")[0].replace("purchase", "purchases").replace("visit", "visits")
        if v < 0:
            return f"{what} down {abs(v) * 100:.0f}% on the previous 90 days"
        return f"{what} changed {v * 100:+.0f}% on the previous 90 days"
    if feature == "avg_basket_365d":
        return f"small baskets: {v:.2f} on average"
    if feature == "purchase_gap_mean_days":
        return f"buys only every {_n(v)} days on average"
    if feature == "purchase_gap_std_days":
        return f"irregular buying: gaps vary by {_n(v)} days"
    if feature == "returns_365d":
        return f"{_n(v)} returns in the last year"
    if feature == "return_rate_365d":
        return f"returned {v * 100:.0f}% of purchases in the last year"
    if feature in ("complaints_90d", "complaints_365d"):
        return f"{_n(v)} complaints in the last {_window(feature)} days"
    if feature == "complaint_share_365d":
        return f"complaints are {v * 100:.0f}% of their contacts this year"
    if feature == "discount_share_365d":
        return f"{v * 100:.0f}% of purchases made with a discount"
    return f"{feature} = {v:g}"


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """Per customer, the k features with the largest positive contribution to churn, with values and text.

    `contributions`: one column per feature (log-odds), same index as `features`. Columns
    reason_{i}_feature/_value/_contribution/_text; empty where fewer than i features push towards churn.
    """
    names = np.asarray(contributions.columns, dtype=object)
    c = contributions.to_numpy()
    fv = features[list(names)].to_numpy(dtype="float64")
    records = features.to_dict("records")
    order = np.argsort(-c, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(c))
    out = {}
    for i in range(k):
        idx = order[:, i]
        contrib = c[rows, idx]
        positive = contrib > 0
        feat = np.where(positive, names[idx], None)
        out[f"reason_{i + 1}_feature"] = feat
        out[f"reason_{i + 1}_value"] = np.where(positive, fv[rows, idx], np.nan)
        out[f"reason_{i + 1}_contribution"] = np.where(positive, contrib, np.nan)
        out[f"reason_{i + 1}_text"] = [reason_text(f, records[r]) if f is not None else None
                                       for r, f in enumerate(feat)]
    return pd.DataFrame(out, index=contributions.index)
