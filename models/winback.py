"""Who gets a win-back offer, and which one (pure; the flow writes the list)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.errors import UserError
from expectations.scores import RISK_TIERS
from expectations.winback import WINBACK_COLUMN_NAMES
from models.reasons import REASON_CATEGORY


class BadContacts(UserError, ValueError):
    """A contact history whose contact times cannot be read."""


class WeakKey(UserError, ValueError):
    """A pseudonymisation key too short to be a secret."""


MIN_KEY_BYTES = 16

DEFAULT_ACTIONS: dict[str, str] = {
    "overdue": "reminder: personal 'we miss you' message with what is new",
    "disengaged": "re-engagement: content and recommendations matched to past purchases",
    "spend_falling": "offer: loyalty bonus on the next order",
    "complaints": "service call: a person calls to resolve the open issue",
    "price_sensitive": "discount: time-limited discount code",
    "other": "reminder: personal 'we miss you' message with what is new",
}

@dataclass(frozen=True)
class WinbackPolicy:
    """Who is worth contacting."""

    top_n: int | None  # None: everyone in the high tier
    cooldown_days: int  # skip customers contacted this recently
    max_inactive_days: int  # skip customers gone longer than this: no campaign reaches them
    actions: dict[str, str]  # reason category -> action (DEFAULT_ACTIONS, overridden by settings)


def select_winback(scores: pd.DataFrame, policy: WinbackPolicy, contacts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ranked win-back list: high tier (or the top N by value at risk), minus the recently contacted
    and the long gone, ranked by value at risk, each with its main reason and a suggested action.

    `contacts` has customer_id and contacted_at (UTC); only contacts at or before as_of count.
    """
    s = scores
    as_of = pd.Timestamp(s["as_of"].iloc[0]).tz_localize("UTC") if len(s) else None
    reachable = s["days_since_last_event"] <= policy.max_inactive_days
    if contacts is not None and len(contacts) and as_of is not None:
        try:
            t = pd.to_datetime(contacts["contacted_at"], utc=True, format="ISO8601")
        except ValueError as e:
            raise BadContacts(f"contact history: contacted_at must be ISO 8601 dates or times: {e}") from e
        recent = contacts.loc[(t <= as_of + pd.Timedelta(days=1)) & (t > as_of - pd.Timedelta(days=policy.cooldown_days)),
                              "customer_id"].astype(str)
        reachable &= ~s["customer_id"].isin(set(recent))
    pool = s[reachable].sort_values(["value_at_risk", "churn_probability", "customer_id"],
                                    ascending=[False, False, True], kind="stable")
    pool = pool.head(policy.top_n) if policy.top_n is not None else pool[pool["risk_tier"] == RISK_TIERS[0]]
    category = pool["reason_1_feature"].map(REASON_CATEGORY).fillna("other")
    out = pd.DataFrame({
        "winback_rank": np.arange(1, len(pool) + 1, dtype="int64"),
        "customer_id": pool["customer_id"].to_numpy(),
        "as_of": pool["as_of"].to_numpy(),
        "churn_probability": pool["churn_probability"].to_numpy(),
        "risk_tier": pool["risk_tier"].to_numpy(),
        "value_at_risk": pool["value_at_risk"].to_numpy(),
        "expected_value": pool["expected_value"].to_numpy(),
        "days_since_last_purchase": pool["days_since_last_purchase"].to_numpy(),
        "main_reason": pool["reason_1_feature"].to_numpy(),
        "main_reason_text": pool["reason_1_text"].to_numpy(),
        "reason_category": category.to_numpy(),
        "suggested_action": category.map(lambda c: policy.actions.get(c, policy.actions.get("other", ""))).to_numpy(),
        "model_version": pool["model_version"].to_numpy(),
    })
    return out[WINBACK_COLUMN_NAMES]


def winback_summary(chosen: pd.DataFrame, day: str, head: int = 20) -> dict:
    """What a win-back run reports: size, value at risk, customers per reason category, the top rows."""
    return {"as_of": day, "customers": len(chosen), "value_at_risk": float(chosen["value_at_risk"].sum()),
            "by_action": {str(k): int(v) for k, v in chosen["reason_category"].value_counts().items()},
            "rows": chosen.head(head).to_dict("records")}


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe (numbers stay numbers)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return out


def pseudonymise(ids: pd.Series, key: bytes) -> pd.Series:
    """Keyed hash (HMAC-SHA256, 24 hex chars) of each id: stable for one key, not reversible without it."""
    import hashlib
    import hmac

    if len(key) < MIN_KEY_BYTES:
        raise WeakKey(f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes")
    return ids.astype(str).map(lambda v: "p_" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:24])
