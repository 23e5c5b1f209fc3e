"""Reason codes: the features that push a customer's churn score up, in plain language."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

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


_WHEN_MISSING = {"days_since_last_visit": "has never visited", "avg_basket_365d": "no purchase in the last year",
                 "purchase_gap_mean_days": "fewer than two purchases so far",
                 "purchase_gap_std_days": "too few purchases for a rhythm"}


@lru_cache(maxsize=None)
def _formatter(feature: str) -> Callable[[float, float, float], str]:
    """The sentence of one feature as a function of (value, mean purchase gap, overdue ratio).

    Built once per feature, so scoring a million customers formats without re-deciding the wording.
    """
    if feature == "days_since_last_purchase":
        def text(v, gap, overdue):
            if v != v:
                return "has never bought"
            return f"no purchase for {v:.0f} days" + (f", {overdue:.1f}x longer than usual"
                                                       if overdue == overdue and overdue >= 1.5 else "")
        return text
    if feature == "overdue_ratio":
        return lambda v, gap, overdue: ("no regular buying rhythm yet" if v != v
                                        else f"{v:.1f}x their usual {_n(gap)} days between purchases")
    w = _window(feature)
    if feature == "days_since_last_event":
        fmt = lambda v: f"no activity at all for {v:.0f} days"  # noqa: E731
    elif feature == "days_since_last_visit":
        fmt = lambda v: f"no visit for {v:.0f} days"  # noqa: E731
    elif feature == "tenure_days":
        fmt = lambda v: f"customer for only {v:.0f} days" if v < 180 else f"customer for {v:.0f} days"  # noqa: E731
    elif feature.startswith("visits_"):
        fmt = lambda v: f"{v:.0f} visits in the last {w} days"  # noqa: E731
    elif feature == "purchases_total":
        fmt = lambda v: f"{v:.0f} purchases in total"  # noqa: E731
    elif feature.startswith("purchases_"):
        fmt = lambda v: f"{v:.0f} purchases in the last {w} days"  # noqa: E731
    elif feature.endswith("_trend_90d"):
        what = feature.split("_")[0].replace("purchase", "purchases").replace("visit", "visits")
        fmt = lambda v: (f"{what} down {abs(v) * 100:.0f}% on the previous 90 days" if v < 0  # noqa: E731
                         else f"{what} changed {v * 100:+.0f}% on the previous 90 days")
    elif feature.startswith("spend_"):
        fmt = lambda v: f"spent {v:.2f} in the last {w} days"  # noqa: E731
    elif feature == "avg_basket_365d":
        fmt = lambda v: f"small baskets: {v:.2f} on average"  # noqa: E731
    elif feature == "purchase_gap_mean_days":
        fmt = lambda v: f"buys only every {v:.0f} days on average"  # noqa: E731
    elif feature == "purchase_gap_std_days":
        fmt = lambda v: f"irregular buying: gaps vary by {v:.0f} days"  # noqa: E731
    elif feature == "returns_365d":
        fmt = lambda v: f"{v:.0f} returns in the last year"  # noqa: E731
    elif feature == "return_rate_365d":
        fmt = lambda v: f"returned {v * 100:.0f}% of purchases in the last year"  # noqa: E731
    elif feature in ("complaints_90d", "complaints_365d"):
        fmt = lambda v: f"{v:.0f} complaints in the last {w} days"  # noqa: E731
    elif feature == "complaint_share_365d":
        fmt = lambda v: f"complaints are {v * 100:.0f}% of their contacts this year"  # noqa: E731
    elif feature == "discount_share_365d":
        fmt = lambda v: f"{v * 100:.0f}% of purchases made with a discount"  # noqa: E731
    else:
        fmt = lambda v: f"{feature} = {v:g}"  # noqa: E731
    missing = _WHEN_MISSING.get(feature, f"{feature} unknown")
    return lambda v, gap, overdue: missing if v != v else fmt(v)


def reason_text(feature: str, row) -> str:
    """One sentence saying why this feature raises the customer's churn risk (`row`: feature -> value)."""
    def get(name: str) -> float:
        v = row.get(name, math.nan)
        return math.nan if v is None else float(v)

    return _formatter(feature)(get(feature), get("purchase_gap_mean_days"), get("overdue_ratio"))


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """Per customer, the k features with the largest positive contribution to churn, with values and text.

    `contributions`: one column per feature (log-odds), same index as `features`. Columns
    reason_{i}_feature/_value/_contribution/_text; empty where fewer than i features push towards churn.
    """
    names = np.asarray(contributions.columns, dtype=object)
    c = contributions.to_numpy()
    fv = features[list(names)].to_numpy(dtype="float64")
    nan = pd.Series(np.nan, index=features.index)
    gap = features.get("purchase_gap_mean_days", nan).to_numpy(dtype="float64")
    overdue = features.get("overdue_ratio", nan).to_numpy(dtype="float64")
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
        text = np.full(len(c), None, dtype=object)
        value = fv[rows, idx]
        for j in np.unique(idx[positive]):  # one formatter per feature, over all its rows at once
            at = np.flatnonzero(positive & (idx == j))
            f = _formatter(str(names[j]))
            text[at] = [f(v, g, o) for v, g, o in zip(value[at].tolist(), gap[at].tolist(), overdue[at].tolist())]
        out[f"reason_{i + 1}_text"] = text
    return pd.DataFrame(out, index=contributions.index)
