"""The same feature table in plain pandas: the obvious read-everything, groupby implementation.

Kept as a reference: a test checks the DuckDB SQL against it, and `churn bench` measures the speed-up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.customer import FEATURE_NAMES

DAY = pd.Timedelta(days=1)


def customer_features_pandas(events: pd.DataFrame, as_of: pd.Timestamp, lookback_days: int = 365) -> pd.DataFrame:
    """One row per customer active in the lookback, indexed by customer_id (same columns as the SQL)."""
    as_of = pd.Timestamp(as_of)
    e = events[events["event_time"] <= as_of]
    last = e.groupby("customer_id")["event_time"].max()
    scope = last.index[last > as_of - pd.Timedelta(days=lookback_days)]
    e = e[e["customer_id"].isin(scope)].copy()
    age = (as_of - e["event_time"]) / DAY
    e["age"] = age
    g = e.groupby("customer_id")
    out = pd.DataFrame(index=pd.Index(sorted(scope), name="customer_id"))
    out["days_since_last_event"] = g["age"].min()
    out["tenure_days"] = g["age"].max()
    typed = {t: e[e["event_type"] == t] for t in ("visit", "purchase", "return", "complaint")}
    out["days_since_last_visit"] = typed["visit"].groupby("customer_id")["age"].min()
    out["days_since_last_purchase"] = typed["purchase"].groupby("customer_id")["age"].min()

    def count(t, hi, lo=0):
        d = typed[t]
        return d[(d["age"] < hi) & (d["age"] >= lo)].groupby("customer_id").size().reindex(out.index, fill_value=0)

    def spend(hi, lo=0):
        d = typed["purchase"]
        return d[(d["age"] < hi) & (d["age"] >= lo)].groupby("customer_id")["amount"].sum().reindex(out.index, fill_value=0.0)

    for w in (30, 90, 365):
        out[f"visits_{w}d"] = count("visit", w)
        out[f"purchases_{w}d"] = count("purchase", w)
        out[f"spend_{w}d"] = spend(w)
    out["purchases_total"] = typed["purchase"].groupby("customer_id").size().reindex(out.index, fill_value=0)
    out["avg_basket_365d"] = (out["spend_365d"] / out["purchases_365d"]).where(out["purchases_365d"] > 0)
    p = typed["purchase"].sort_values(["customer_id", "event_time"])
    gaps = p.groupby("customer_id")["event_time"].diff().dropna() / DAY
    gaps = gaps.groupby(p.loc[gaps.index, "customer_id"])
    out["purchase_gap_mean_days"] = gaps.mean()
    out["purchase_gap_std_days"] = gaps.std()
    out["overdue_ratio"] = (out["days_since_last_purchase"] / out["purchase_gap_mean_days"]).where(
        out["purchase_gap_mean_days"] > 0)

    def trend(cur, prev):
        tot = cur + prev
        return ((cur - prev) / tot).where(tot > 0)

    out["purchase_trend_90d"] = trend(out["purchases_90d"], count("purchase", 180, 90))
    out["spend_trend_90d"] = trend(out["spend_90d"], spend(180, 90))
    out["visit_trend_90d"] = trend(out["visits_90d"], count("visit", 180, 90))
    out["returns_365d"] = count("return", 365)
    out["return_rate_365d"] = (out["returns_365d"] / out["purchases_365d"]).where(out["purchases_365d"] > 0)
    out["complaints_90d"] = count("complaint", 90)
    out["complaints_365d"] = count("complaint", 365)
    n365 = e[e["age"] < 365].groupby("customer_id").size().reindex(out.index, fill_value=0)
    out["complaint_share_365d"] = out["complaints_365d"] / n365.replace(0, np.nan)
    d = typed["purchase"]
    disc = d[(d["age"] < 365) & (d["discount"] > 0)].groupby("customer_id").size().reindex(out.index, fill_value=0)
    out["discount_share_365d"] = (disc / out["purchases_365d"]).where(out["purchases_365d"] > 0)
    return out[FEATURE_NAMES].astype("float64")
