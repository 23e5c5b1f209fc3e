"""Who gets a win-back offer, and which one (pure; the flow writes the list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from churn.errors import UserError
from expectations.scores import CURVE_HORIZONS, N_REASONS, RISK_TIERS
from expectations.winback import CAMPAIGN_SHEET, GROUPS, REASON_CATEGORIES, SELECTION_COLUMN_NAMES
from models.curve import curve_columns
from models.reasons import REASON_CATEGORY


class BadContacts(UserError, ValueError):
    """A contact history whose contact times cannot be read."""


class CurrencyMismatch(UserError, ValueError):
    """Scores whose reasons name one currency, a list asked to label its money with another."""


def check_currency(scores_currency: str | None, currency: str, day: str) -> None:
    """CurrencyMismatch when the day's scores were written with another currency than the list would use: the
    CSV's header and its reasons' amounts would name two currencies in one row (nothing is converted)."""
    if scores_currency is not None and scores_currency != currency:
        raise CurrencyMismatch(f"the scores of {day} were written with currency {scores_currency} (their reasons name "
                               f"it), but the currency setting is now {currency}: run `churn score --as-of {day}` "
                               f"again to relabel them, or set currency = \"{scores_currency}\" for this list")


class WeakKey(UserError, ValueError):
    """A pseudonymisation key too short to be a secret."""


MIN_KEY_BYTES = 16

DEFAULT_ACTIONS: dict[str, str] = {
    "complaints": "service call: a person calls to resolve the open issue",
    "overdue": "reminder: personal 'we miss you' message with what is new",
    "spend_falling": "offer: loyalty bonus on the next order",
    "price_sensitive": "discount: time-limited discount code",
    "disengaged": "re-engagement: content and recommendations matched to past purchases",
    "other": "reminder: personal 'we miss you' message with what is new",
}

# Which reason decides the action when a customer has several (reasons 1-3 are all read, not only the first).
# Highest first, as retention practice orders them:
# 1. complaints: an open complaint or a run of returns is a service failure; any marketing message before it
#    is resolved reads as not listening, while a resolved complaint is the best chance to keep the customer.
# 2. overdue: later than their own buying rhythm, or than most customers; the habit is breaking and a plain
#    reminder works best while it is fresh (and costs no margin).
# 3. spend_falling: still buying, but less; reward staying with a loyalty bonus.
# 4. price_sensitive: buys on discount; a code is the last lever of the money kind, since discounts train
#    customers to wait for them.
# 5. disengaged: visits falling or a new customer; content, the softest touch.
ACTION_PRIORITY: tuple[str, ...] = REASON_CATEGORIES


@dataclass(frozen=True)
class WinbackPolicy:
    """Who is worth contacting."""

    top_n: int | None  # None: everyone in the high tier
    cooldown_days: int  # skip customers contacted this recently
    max_inactive_days: int  # skip customers gone longer than this: no campaign reaches them
    actions: dict[str, str]  # reason category -> action (DEFAULT_ACTIONS, overridden by settings)
    currency: str  # ISO 4217 code of the amounts
    control_share: float = 0.10  # held out of the campaign as a control group (0: no hold-out)

    @property
    def selection(self) -> str:
        """What the list takes, in words; also names its files (see list_name)."""
        return f"top {self.top_n} by value at risk" if self.top_n is not None else f"{RISK_TIERS[0]} tier"

    @property
    def list_name(self) -> str:
        """The file stem of this selection: each selection of a day has its own files, so a top-N list never
        replaces the day's full list."""
        return "winback" if self.top_n is None else f"winback-top{self.top_n}"


@dataclass(frozen=True)
class Step:
    """One step of the selection and how many customers are left after it."""

    step: str  # scored | tier | inactive | value | cooldown | top
    label: str  # what is left, in words: "in the high tier", "after the 180-day inactivity limit"
    customers: int


class Selection(NamedTuple):
    """The ranked list and the steps that led to it (each with its count, so nobody is dropped silently)."""

    chosen: pd.DataFrame
    steps: list[Step]


def choose_action(categories: pd.DataFrame, actions: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """Per row of reason categories (one column per reason, None where no reason), the category that decides
    the action (the first of ACTION_PRIORITY among them; "other" if none) and the action itself."""
    chosen = pd.Series("other", index=categories.index, dtype=object)
    for category in reversed(ACTION_PRIORITY):  # the highest priority is written last and wins
        chosen[(categories == category).any(axis=1)] = category
    return chosen, chosen.map(lambda c: actions.get(c, actions.get("other", "")))


def select_winback(scores: pd.DataFrame, policy: WinbackPolicy, contacts: pd.DataFrame | None = None,
                   list_key: str | None = None) -> Selection:
    """The ranked win-back list: high tier (or the top N by value at risk), minus the long gone and the recently
    contacted, ranked by value at risk, each with its three reasons and the action they call for; plus the
    count after each step.

    `contacts` has customer_id and contacted_at (UTC), optionally list_id: a customer contacted within
    `cooldown_days` (> 0) before as_of, or at any time since (by another campaign, while this day's list waited), is
    not listed again. A contact made for this very list (its list_id is `list_key`) is the list's own campaign:
    that customer stays, so a day's list written again after its campaign went out keeps its customers and
    their groups (dropping them would take the treated customers out of the experiment `churn outcomes`
    measures); the step says how many such contacts it saw.
    """
    s = scores
    as_of = pd.Timestamp(s["as_of"].iloc[0]).tz_localize("UTC") if len(s) else None
    steps = [Step("scored", "scored", len(s))]
    if policy.top_n is None:
        s = s[s["risk_tier"] == RISK_TIERS[0]]
        steps.append(Step("tier", f"in the {policy.selection}", len(s)))
    s = s[s["days_since_last_event"] <= policy.max_inactive_days]
    steps.append(Step("inactive", f"after the {policy.max_inactive_days}-day inactivity limit", len(s)))
    # nothing to win back: no spend in the last year (never bought, or bought over a year ago), so no value at risk
    s = s[s["value_at_risk"] > 0]
    steps.append(Step("value", "with value at risk above 0", len(s)))
    label = f"after the {policy.cooldown_days}-day cooldown"
    if contacts is not None and len(contacts) and as_of is not None:
        try:
            t = pd.to_datetime(contacts["contacted_at"], utc=True, format="ISO8601")
        except ValueError as e:
            raise BadContacts(f"contact history: contacted_at must be ISO 8601 dates or times: {e}") from e
        own = (contacts["list_id"].astype("string").fillna("").to_numpy() == list_key
               if list_key is not None and "list_id" in contacts.columns else np.zeros(len(contacts), dtype=bool))
        others = ~own & (policy.cooldown_days > 0)  # a 0-day cooldown drops nobody, contacted before or since
        recent = set(contacts.loc[others & (t > as_of - pd.Timedelta(days=policy.cooldown_days)).to_numpy(),
                                  "customer_id"].astype(str))
        after = set(contacts.loc[others & (t > as_of + pd.Timedelta(days=1)).to_numpy(), "customer_id"].astype(str))
        dropped = s["customer_id"].isin(recent)
        later = int((dropped & s["customer_id"].isin(after)).sum())
        kept = int((~dropped & s["customer_id"].isin(set(contacts.loc[own, "customer_id"].astype(str)))).sum())
        notes = ([f"{later:,} of them contacted after the list's day"] if later else []) + (
            [f"{kept:,} contacted by this list's own campaign kept"] if kept else [])
        if notes:
            label += f" ({'; '.join(notes)})"
        s = s[~dropped]
    elif contacts is None:
        label += " (no contact history given)"
    steps.append(Step("cooldown", label, len(s)))
    pool = s.sort_values(["value_at_risk", "churn_probability", "customer_id"], ascending=[False, False, True],
                         kind="stable")
    if policy.top_n is not None:
        pool = pool.head(policy.top_n)
        steps.append(Step("top", f"kept: the {policy.selection}", len(pool)))
    return Selection(winback_rows(pool, policy), steps)


def winback_rows(pool: pd.DataFrame, policy: WinbackPolicy) -> pd.DataFrame:
    """The list's rows (contract columns) for scored rows already chosen and ranked."""
    k = range(1, N_REASONS + 1)
    categories = pd.DataFrame({i: pool[f"reason_{i}_feature"].map(REASON_CATEGORY) for i in k}, index=pool.index)
    categories = categories.astype(object).where(categories.notna(), None)
    decided_by, action = choose_action(categories, policy.actions)
    out = pd.DataFrame({
        "winback_rank": np.arange(1, len(pool) + 1, dtype="int64"),
        "customer_id": pool["customer_id"].to_numpy(),
        "as_of": pool["as_of"].to_numpy(),
        "selection": policy.selection,
        "churn_probability": pool["churn_probability"].to_numpy(),
        "risk_score": np.rint(pool["churn_probability"].to_numpy() * 100).astype("int64"),
        "risk_tier": pool["risk_tier"].to_numpy(),
        "value_at_risk": pool["value_at_risk"].to_numpy(),
        "expected_value": pool["expected_value"].to_numpy(),
        "currency": policy.currency,
        "days_since_last_purchase": pool["days_since_last_purchase"].to_numpy(),
        "days_since_last_event": pool["days_since_last_event"].to_numpy(),
        **{c: v for i in k for c, v in ((f"reason_{i}_feature", pool[f"reason_{i}_feature"].to_numpy()),
                                        (f"reason_{i}_category", categories[i].to_numpy()),
                                        (f"reason_{i}_text", pool[f"reason_{i}_text"].to_numpy()))},
        "action_category": decided_by.to_numpy(),
        "suggested_action": action.to_numpy(),
        "model_version": pool["model_version"].to_numpy(),
    })
    return out[SELECTION_COLUMN_NAMES]


def list_id(day: str, list_name: str) -> str:
    """A list's id: the scored day and the selection. Writing the day's list again keeps its id, and so every
    customer's group (the hold-out is drawn from the id)."""
    return f"{list_name}-{day}"


def _draw(list_key: str, customer_ids: pd.Series) -> np.ndarray:
    """A uniform number in [0, 1) per customer, from a keyed hash of (list id, customer id): the same on every
    machine and run, independent across lists."""
    import hashlib

    key = list_key.encode()[:64]
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(c).encode(), key=key, digest_size=8).digest(), "big")
                        / 2.0**64 for c in customer_ids), dtype="float64", count=len(customer_ids))


def hold_out(chosen: pd.DataFrame, key: str, share: float, earlier: dict[str, str] | None = None) -> pd.DataFrame:
    """The list with its hold-out: within each stratum (risk tier x action category), customers in the order of
    a keyed random draw; the first round(share x stratum size) are `control` (never contacted, never in the
    CSV), the others `target`, ranked for contact (`contact_rank`) in the list's order. Deterministic from the
    list id and the customer ids; stratified, so target and control are alike in risk and in reason.

    `earlier`: customer id -> group in an earlier write of this list (same id). A customer keeps that group
    whatever else changed (a customer dropped by another campaign's contact moves the quotas): a control
    customer must never become a target of the same campaign, nor a contacted target a control one."""
    out = chosen.copy()
    draw = pd.Series(_draw(key, out["customer_id"]), index=out.index)
    order = draw.groupby([out["risk_tier"], out["action_category"]], sort=False).rank(method="first")
    size = out.groupby(["risk_tier", "action_category"], sort=False)["customer_id"].transform("size")
    control = order <= np.floor(share * size + 0.5)
    if earlier:
        before = out["customer_id"].astype(str).map(earlier)
        control = control.where(before.isna(), before == GROUPS[1])
    out["list_id"] = key
    out["group"] = np.where(control, GROUPS[1], GROUPS[0])
    target = ~control
    out["contact_rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out.loc[target, "contact_rank"] = np.arange(1, int(target.sum()) + 1)
    return out


def ledger_record(summary: dict, policy: WinbackPolicy, listed: pd.DataFrame, file_stem: str, written: dict) -> dict:
    """The campaign ledger's record of one written list: id, day, selection settings, sizes of the target and
    control groups with their value at risk, the model versions behind it, and `written` (files, when)."""
    return {"list_id": summary["list_id"], "file_stem": file_stem, "as_of": summary["as_of"],
            "selection": policy.selection, "target": summary["customers"], "control": summary["control"],
            "control_share": policy.control_share, "cooldown_days": policy.cooldown_days,
            "max_inactive_days": policy.max_inactive_days, "top_n": policy.top_n,
            "model_versions": sorted({str(v) for v in listed["model_version"]}),
            "value_at_risk": summary["value_at_risk"], "control_value_at_risk": summary["control_value_at_risk"],
            "currency": policy.currency, **written}


def selection_line(steps: list[Step]) -> str:
    """The selection in one line, e.g. "14,189 scored -> 4,554 in the high tier -> 1,971 after the 180-day
    inactivity limit -> 1,971 after the 30-day cooldown (no contact history given)"."""
    return " -> ".join(f"{s.customers:,} {s.label}" for s in steps)


def campaign_sheet(chosen: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The CSV a campaign manager opens: the target group only (a control customer is never in it), human
    headers in reading order, numbers rounded (still numbers), formula prefixes neutralised."""
    chosen = chosen[chosen["group"] == GROUPS[0]]
    out = {}
    for header, column, decimals in CAMPAIGN_SHEET:
        v = chosen[column]
        if decimals == 0:
            v = v.round().astype("Int64")  # a missing day count stays empty, not "nan"
        elif decimals is not None:
            v = v.round(decimals)
        out[header.format(currency=currency)] = v.reset_index(drop=True)
    return spreadsheet_safe(pd.DataFrame(out))


def winback_summary(selection: Selection, day: str, currency: str, head: int = 20) -> dict:
    """What a win-back run reports for a held-out list (see hold_out): size and value at risk of the target and
    control groups, each selection step, customers per action, the top target rows."""
    listed = selection.chosen
    chosen, control = (listed[listed["group"] == g] for g in GROUPS)
    return {"as_of": day, "list_id": listed["list_id"].iloc[0] if len(listed) else None,
            "customers": len(chosen), "control": len(control),
            "value_at_risk": float(chosen["value_at_risk"].sum()),
            "control_value_at_risk": float(control["value_at_risk"].sum()), "currency": currency,
            "selection": selection_line(selection.steps),
            "steps": [{"step": s.step, "label": s.label, "customers": s.customers} for s in selection.steps],
            "by_action": {str(k): int(v) for k, v in chosen["action_category"].value_counts().items()},
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


def explain_customer(row: pd.DataFrame, policy: WinbackPolicy, entry: dict | None, list_written: bool) -> dict:
    """One scored customer (a one-row scores frame) as `churn explain` shows it: score, tier, rank, value, the
    three reasons with their categories, the action they call for, and whether (or why not) the customer is on
    the day's win-back list."""
    r = row.iloc[0]
    listed = winback_rows(row, policy).iloc[0]
    if entry is not None and entry["group"] == GROUPS[1]:
        on_list = (f"held out of the day's win-back list as control (list {entry['list_id']}): not to be contacted, "
                   f"so the campaign's effect can be measured")
    elif entry is not None:
        on_list = f"on the day's win-back list at rank {entry['contact_rank']:,}"
    elif r["risk_tier"] != RISK_TIERS[0]:
        on_list = f"not on the win-back list: {r['risk_tier']} tier (the list takes the {RISK_TIERS[0]} tier)"
    elif r["days_since_last_event"] > policy.max_inactive_days:
        on_list = (f"not on the win-back list: {r['days_since_last_event']:.0f} days without an event, beyond the "
                   f"{policy.max_inactive_days}-day inactivity limit")
    elif list_written:
        on_list = f"not on the win-back list: contacted within the {policy.cooldown_days}-day cooldown"
    else:
        on_list = "no win-back list written for this day yet (`churn winback`)"
    reasons = [{"rank": i, "category": listed[f"reason_{i}_category"], "text": r[f"reason_{i}_text"],
                "feature": r[f"reason_{i}_feature"]}
               for i in range(1, N_REASONS + 1) if isinstance(r[f"reason_{i}_text"], str) and r[f"reason_{i}_text"]]
    optional = {k: (None if pd.isna(r[k]) else float(r[k])) for k in ("days_since_last_purchase",)}
    curve = {h: float(r[c]) for h, c in zip(CURVE_HORIZONS, curve_columns())
             if c in r.index and pd.notna(r[c])}  # days scored before the curve existed have none
    if curve:
        date = r.get("expected_next_purchase_date")
        optional["next_purchase"] = {"p_no_purchase": curve, "median_days": float(r["median_days_to_next_purchase"]),
                                     "expected_date": None if date is None or pd.isna(date) else str(date)}
    return {"customer_id": str(r["customer_id"]), "as_of": str(r["as_of"]), "model_version": str(r["model_version"]),
            "horizon_days": int(r["horizon_days"]), "risk_score": int(listed["risk_score"]),
            "churn_probability": float(r["churn_probability"]), "risk_tier": str(r["risk_tier"]),
            "risk_rank": int(r["risk_rank"]), "expected_value": float(r["expected_value"]),
            "value_at_risk": float(r["value_at_risk"]), "currency": policy.currency,
            "days_since_last_event": float(r["days_since_last_event"]), **optional,
            "reasons": reasons, "reasons_method": str(r["reasons_method"]),
            "action_category": str(listed["action_category"]), "suggested_action": str(listed["suggested_action"]),
            "winback": on_list}
