"""Every customer feature declared once, as a record; the query, the reasons and the docs come from these.

`features.customer` builds the feature SQL from the records, `models.reasons` their categories and
sentences, `models.baselines` its columns (by role) and the README its feature table. Pure: SQL and
text as strings, no Prefect, MLflow or paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

DAY_SECONDS = 86400.0
DAY_US = 86_400_000_000  # microseconds in a day: ages are whole microseconds, compared and summed exactly
# placeholder for the cutoff's timestamp literal; the feature query fills it in (its `past` step computes each
# event's age before the cutoff, `e.age_us`, which the aggregates read)
AS_OF = "{as_of}"

# a mean purchase gap shorter than this is no buying rhythm (several orders on one day), so nothing is "late" against it
MIN_GAP_DAYS = 1.0
HIGHER, LOWER = "higher", "lower"  # the direction in which a feature's value points towards churn
PEERS, OWN = "peers", "own"  # what a value is compared with: the other active customers, or the customer's own past


class Context(NamedTuple):
    """What a reason sentence may quote besides the value itself."""

    gap: float  # the customer's mean purchase gap (days; NaN if fewer than two purchases)
    overdue: float  # the customer's overdue ratio (NaN without a buying rhythm)
    peers: str  # share of active customers on the safe side of the value, e.g. "83 %"
    currency: str  # e.g. "GBP"


# (value, context) -> reason text, for wordings a template cannot express
Sentence = Callable[[float, Context], str]


@dataclass(frozen=True)
class Aggregate:
    """One per-customer aggregate over the past events `e`: a column of the feature query's `agg` step."""

    name: str
    expression: str


@dataclass(frozen=True)
class Feature:
    """One model feature: its meaning and unit, how it is computed and how it reads as a churn reason.

    A feature is a reason for a customer only when its contribution raises the churn score AND its value
    points towards churn against its reference: for `peers`, beyond at least half of the active customers
    scored the same day (in the direction `churn_when`); for `own`, beyond `neutral` (a trend below 0 is
    less than in the previous 90 days; an overdue ratio above 1 is later than usual).
    """

    name: str
    meaning: str
    unit: str
    reason_category: str  # the win-back action table is keyed by these
    # template over {v} (the value), {w} (the window), {gap}, {overdue}, {peers} (see Context), {money} (the
    # value as an amount with the currency), {pct} (the value as a percentage), {days} (the value in days),
    # {n} (the value as a count of `noun`), or a callable
    sentence: str | Sentence
    # SQL over the `agg` (a) and `gaps` (g) columns; left empty when the feature is its own aggregate: a.<name>
    expression: str = ""
    aggregate: str | None = None  # SQL over the past events `e` when the feature is itself a per-customer aggregate
    # the reason text for an empty value; None: an empty value is never a reason (it says nothing towards churn,
    # or only restates another reason, e.g. no basket size because nothing was bought)
    when_missing: str | None = None
    # the part it plays elsewhere: the baselines' recency/frequency/monetary/tenure, or {gap}/{overdue} in sentences
    role: str | None = None
    # bounded by the history the store holds at the cutoff (it grows as the store gets older, whatever the
    # customers do): the drift check compares it relative to that history, not as an absolute number
    grows_with_history: bool = False
    churn_when: str = field(default=HIGHER, kw_only=True)  # HIGHER or LOWER values point towards churn
    reference: str = field(default=PEERS, kw_only=True)  # PEERS or OWN
    neutral: float = field(default=0.0, kw_only=True)  # for OWN: the value that means "as before"
    # a spend or purchase count over a window: a reason only if the customer bought within it, else it merely
    # restates "no purchase for N days" (a lapse, not falling spend)
    bought_within: int | None = field(default=None, kw_only=True)
    # features stating the same fact share this key (default: the name); a customer gets one reason per fact
    fact: str = field(default="", kw_only=True)
    noun: tuple[str, str] = field(default=("", ""), kw_only=True)  # singular and plural, for {n}
    # compares with the customer's buying rhythm: a reason only when their mean purchase gap is a rhythm
    rhythm: bool = field(default=False, kw_only=True)

    def __post_init__(self):
        if not self.expression:
            if self.aggregate is None:
                raise ValueError(f"feature {self.name} needs an expression or an aggregate")
            object.__setattr__(self, "expression", f"a.{self.name}")
        if not self.fact:
            object.__setattr__(self, "fact", self.name)
        if self.churn_when not in (HIGHER, LOWER) or self.reference not in (PEERS, OWN):
            raise ValueError(f"feature {self.name}: churn_when must be {HIGHER!r} or {LOWER!r}, "
                             f"reference {PEERS!r} or {OWN!r}")

    @property
    def window(self) -> str:
        """The window named by the feature's suffix: "90" for visits_90d."""
        return self.name.rsplit("_", 1)[-1].removesuffix("d")


# The SQL below is the one definition both engines run: written in DuckDB's dialect, transpiled by SQLGlot for
# Spark (features.sql). So it keeps to constructs that mean the same on both: ages in whole microseconds
# (`epoch_us`, which features.sql maps to Spark's `unix_micros`), `DECIMAL(38, 0)` instead of `HUGEINT`, windows as
# integer ages instead of time-zone-dependent interval arithmetic, division guarded rather than left to each
# engine's x/0 (DuckDB: inf or NaN; Spark in ANSI mode: an error), float constants as DOUBLE casts (a literal such
# as 86400.0 is a DECIMAL in Spark).
def epoch_us(instant: str) -> str:
    """SQL: an instant as whole microseconds since 1970-01-01 UTC (BIGINT)."""
    return f"epoch_us({instant})"


def us_as_days(us: str) -> str:
    """SQL: a time in whole microseconds as days (DOUBLE)."""
    return f"CAST({us} AS DOUBLE) / {DAY_US}"


def _age(agg: str) -> str:
    return us_as_days(agg)


def _within(days: int, etype: str | None = None, lo: int = 0) -> str:
    cond = f"e.age_us < {days * DAY_US}"
    if lo:
        cond += f" AND e.age_us >= {lo * DAY_US}"
    if etype:
        cond += f" AND e.event_type = '{etype}'"
    return cond


def _count(cond: str) -> str:
    return f"CAST(count(*) FILTER (WHERE {cond}) AS DOUBLE)"


def _amount(cond: str) -> str:
    # money is summed as DECIMAL: exact, so the result does not depend on DuckDB's parallel summation order
    return f"CAST(coalesce(sum(CAST(e.amount AS DECIMAL(18, 4))) FILTER (WHERE {cond}), 0) AS DOUBLE)"


def _trend(cur: str, prev: str) -> str:
    return f"CASE WHEN ({cur}) + ({prev}) > 0 THEN (({cur}) - ({prev})) / (({cur}) + ({prev})) END"


_PERCENTS = tuple(f"{i} %" for i in range(101))


def percent(share: float) -> str:
    """A share of peers (0..1) as a whole percentage, e.g. 0.839 -> "83 %" (rounded down: "more than 83 %" stays
    true)."""
    return _PERCENTS[int(share * 100 + 1e-9)]


def days(v: float) -> str:
    """A number of days, whole: "1 day", "175 days"."""
    return f"{v:.0f} day" if round(v) == 1 else f"{v:.0f} days"


def money(v: float, currency: str) -> str:
    """An amount with its currency: cents below 100, whole units above (e.g. "GBP 12.50", "GBP 1,235")."""
    return f"{currency} {v:,.2f}" if abs(v) < 100 else f"{currency} {v:,.0f}"


def _no_purchase_for(v: float, x: Context) -> str:
    if x.overdue == x.overdue and x.overdue > 1 and x.gap >= MIN_GAP_DAYS:  # against their own rhythm if they have one
        return f"no purchase for {days(v)}, {x.overdue:.1f}x their usual {days(x.gap)} between purchases"
    return f"no purchase for {days(v)} ({x.peers} of active customers bought more recently)"


def _overdue(v: float, x: Context) -> str:
    return f"no purchase for {days(v * x.gap)}, {v:.1f}x their usual {days(x.gap)} between purchases"


def _customer_for(v: float, x: Context) -> str:
    return (f"customer for only {days(v)}" if v < 180 else f"customer for {days(v)}") + \
        f" ({x.peers} of active customers have been customers longer)"


def _own_change(what: str, none: str) -> Sentence:
    """The last 90 days against the customer's own previous 90, from the trend (last - prev) / (last + prev)."""
    def text(v: float, x: Context) -> str:
        if v <= -1:
            return f"{none} in the last 90 days, after some in the previous 90 days"
        change = 2 * v / (1 - v) if v < 1 else math.inf  # (last - prev) / prev
        if change == math.inf:
            return f"{what} in the last 90 days, none in the previous 90 days"
        return f"{what} in the last 90 days {percent(abs(change))} {'below' if change < 0 else 'above'} " \
               f"their own previous 90 days"
    return text


# aggregates the features are computed from that are not features themselves
INTERMEDIATES: tuple[Aggregate, ...] = (
    Aggregate("visits_prev_90d", _count(_within(180, "visit", 90))),
    Aggregate("purchases_prev_90d", _count(_within(180, "purchase", 90))),
    Aggregate("spend_prev_90d", _amount(_within(180, "purchase", 90))),
    Aggregate("events_365d", _count(_within(365))),
    Aggregate("discounted_365d", _count(_within(365, "purchase") + " AND e.discount > 0")),
)

ACTIVE = "of active customers"
_VISIT, _PURCHASE, _RETURN, _COMPLAINT = ("visit", "visits"), ("purchase", "purchases"), ("return", "returns"), \
    ("complaint", "complaints")

# in model order: the feature table's columns, the model's signature and the README table follow it
DEFINITIONS: tuple[Feature, ...] = (
    Feature("days_since_last_event", "time since the customer's last event of any type", "days",
            "overdue", f"no activity at all for {{days}} ({{peers}} {ACTIVE} were active more recently)",
            aggregate=_age("min(e.age_us)"), fact="away"),
    Feature("days_since_last_visit", "time since the last visit (empty if never visited)", "days",
            "disengaged", f"no visit for {{days}} ({{peers}} {ACTIVE} visited more recently)",
            aggregate=_age("min(e.age_us) FILTER (WHERE e.event_type = 'visit')"),
            when_missing="has never visited", fact="away"),
    Feature("days_since_last_purchase", "time since the last purchase (empty if never bought)", "days",
            "overdue", _no_purchase_for,
            aggregate=_age("min(e.age_us) FILTER (WHERE e.event_type = 'purchase')"),
            when_missing="has never bought", role="recency", fact="lapse"),
    Feature("tenure_days", "time since the customer's first event", "days",
            "disengaged", _customer_for,
            aggregate=_age("max(e.age_us)"), role="tenure", grows_with_history=True, churn_when=LOWER),
    Feature("visits_30d", "visits in the last 30 days", "count",
            "disengaged", f"{{n}} in the last {{w}} days ({{peers}} {ACTIVE} visited more often)",
            aggregate=_count(_within(30, "visit")), churn_when=LOWER, noun=_VISIT, fact="away"),
    Feature("visits_90d", "visits in the last 90 days", "count",
            "disengaged", f"{{n}} in the last {{w}} days ({{peers}} {ACTIVE} visited more often)",
            aggregate=_count(_within(90, "visit")), churn_when=LOWER, noun=_VISIT, fact="away"),
    Feature("visits_365d", "visits in the last 365 days", "count",
            "disengaged", f"{{n}} in the last {{w}} days ({{peers}} {ACTIVE} visited more often)",
            aggregate=_count(_within(365, "visit")), churn_when=LOWER, noun=_VISIT, fact="away"),
    Feature("purchases_30d", "purchases in the last 30 days", "count",
            "spend_falling", f"{{n}} in the last {{w}} days ({{peers}} {ACTIVE} bought more often)",
            aggregate=_count(_within(30, "purchase")), churn_when=LOWER, bought_within=30, noun=_PURCHASE,
            fact="purchases"),
    Feature("purchases_90d", "purchases in the last 90 days", "count",
            "spend_falling", f"{{n}} in the last {{w}} days ({{peers}} {ACTIVE} bought more often)",
            aggregate=_count(_within(90, "purchase")), churn_when=LOWER, bought_within=90, noun=_PURCHASE,
            fact="purchases"),
    Feature("purchases_365d", "purchases in the last 365 days", "count",
            "spend_falling", f"{{n}} in the last {{w}} days ({{peers}} {ACTIVE} bought more often)",
            aggregate=_count(_within(365, "purchase")), role="frequency", churn_when=LOWER, bought_within=365,
            noun=_PURCHASE, fact="purchases"),
    Feature("purchases_total", "purchases since the first event", "count",
            "spend_falling", f"{{n}} in total ({{peers}} {ACTIVE} bought more often)",
            aggregate=_count("e.event_type = 'purchase'"), grows_with_history=True, churn_when=LOWER,
            noun=_PURCHASE, fact="purchases"),
    Feature("spend_30d", "purchase amount in the last 30 days", "currency",
            "spend_falling", f"spent {{money}} in the last {{w}} days ({{peers}} {ACTIVE} spent more)",
            aggregate=_amount(_within(30, "purchase")), churn_when=LOWER, bought_within=30, fact="spend"),
    Feature("spend_90d", "purchase amount in the last 90 days", "currency",
            "spend_falling", f"spent {{money}} in the last {{w}} days ({{peers}} {ACTIVE} spent more)",
            aggregate=_amount(_within(90, "purchase")), churn_when=LOWER, bought_within=90, fact="spend"),
    Feature("spend_365d", "purchase amount in the last 365 days", "currency",
            "spend_falling", f"spent {{money}} in the last {{w}} days ({{peers}} {ACTIVE} spent more)",
            aggregate=_amount(_within(365, "purchase")), role="monetary", churn_when=LOWER, bought_within=365,
            fact="spend"),
    Feature("avg_basket_365d", "average purchase amount in the last 365 days (empty if none)", "currency",
            "spend_falling", f"average basket {{money}} in the last year ({{peers}} {ACTIVE} spend more per purchase)",
            "CASE WHEN a.purchases_365d > 0 THEN a.spend_365d / a.purchases_365d END",
            churn_when=LOWER, bought_within=365),
    Feature("purchase_gap_mean_days", "mean time between consecutive purchases (needs 2+ purchases)", "days",
            "spend_falling", f"buys only every {{days}} on average ({{peers}} {ACTIVE} buy more often)", "g.gap_mean",
            role="gap"),
    Feature("purchase_gap_std_days", "standard deviation of the time between purchases (needs 3+ purchases)", "days",
            "spend_falling", f"irregular buying: gaps vary by {{days}} ({{peers}} {ACTIVE} buy more regularly)",
            "g.gap_std"),
    Feature("overdue_ratio", "days since last purchase / mean purchase gap: >1 means later than usual", "ratio",
            "overdue", _overdue,
            "CASE WHEN g.gap_mean > 0 THEN a.days_since_last_purchase / g.gap_mean END",
            role="overdue", reference=OWN, neutral=1.0, fact="lapse", rhythm=True),
    Feature("purchase_trend_90d", "(purchases last 90d - previous 90d) / (sum of both); -1 = stopped buying",
            "ratio -1..1", "spend_falling", _own_change("purchases", "no purchases"),
            _trend("a.purchases_90d", "a.purchases_prev_90d"),
            churn_when=LOWER, reference=OWN, bought_within=90),
    Feature("spend_trend_90d", "(spend last 90d - previous 90d) / (sum of both)", "ratio -1..1",
            "spend_falling", _own_change("spend", "no spend"), _trend("a.spend_90d", "a.spend_prev_90d"),
            churn_when=LOWER, reference=OWN, bought_within=90),
    Feature("visit_trend_90d", "(visits last 90d - previous 90d) / (sum of both)", "ratio -1..1",
            "disengaged", _own_change("visits", "no visits"), _trend("a.visits_90d", "a.visits_prev_90d"),
            churn_when=LOWER, reference=OWN, fact="away"),
    Feature("returns_365d", "returns in the last 365 days", "count",
            "complaints", f"{{n}} in the last year (more than {{peers}} {ACTIVE})",
            aggregate=_count(_within(365, "return")), noun=_RETURN, fact="returns"),
    Feature("return_rate_365d", "returns / purchases in the last 365 days", "ratio",
            "complaints", f"returned {{pct}} of purchases in the last year (more than {{peers}} {ACTIVE})",
            "CASE WHEN a.purchases_365d > 0 THEN a.returns_365d / a.purchases_365d END", fact="returns"),
    Feature("complaints_90d", "complaints in the last 90 days", "count",
            "complaints", f"{{n}} in the last {{w}} days (more than {{peers}} {ACTIVE})",
            aggregate=_count(_within(90, "complaint")), noun=_COMPLAINT, fact="complaints"),
    Feature("complaints_365d", "complaints in the last 365 days", "count",
            "complaints", f"{{n}} in the last {{w}} days (more than {{peers}} {ACTIVE})",
            aggregate=_count(_within(365, "complaint")), noun=_COMPLAINT, fact="complaints"),
    Feature("complaint_share_365d", "complaints / all events in the last 365 days", "share 0..1",
            "complaints", f"complaints are {{pct}} of their contacts this year (more than for {{peers}} {ACTIVE})",
            "CASE WHEN a.events_365d > 0 THEN a.complaints_365d / a.events_365d END", fact="complaints"),
    Feature("discount_share_365d", "share of purchases in the last 365 days bought with a discount", "share 0..1",
            "price_sensitive", f"{{pct}} of purchases made with a discount (more than for {{peers}} {ACTIVE})",
            "CASE WHEN a.purchases_365d > 0 THEN a.discounted_365d / a.purchases_365d END"),
)

BY_NAME: dict[str, Feature] = {f.name: f for f in DEFINITIONS}
# name -> (meaning, unit)
FEATURES: dict[str, tuple[str, str]] = {f.name: (f.meaning, f.unit) for f in DEFINITIONS}
GROWS_WITH_HISTORY: tuple[str, ...] = tuple(f.name for f in DEFINITIONS if f.grows_with_history)
FEATURE_NAMES: list[str] = list(FEATURES)
# role -> feature name, e.g. "recency" -> "days_since_last_purchase"
ROLE: dict[str, str] = {f.role: f.name for f in DEFINITIONS if f.role}


def aggregates() -> list[Aggregate]:
    """The columns of the feature query's `agg` step: the features that are aggregates, then the intermediates."""
    return [Aggregate(f.name, f.aggregate) for f in DEFINITIONS if f.aggregate is not None] + list(INTERMEDIATES)


def reason_rule(f: Feature) -> str:
    """When a feature's value is a reason (besides raising the score), in words, for the README."""
    if f.reference == PEERS:
        rule = f"{f.churn_when} than for half of the active customers or more"
    else:
        rule = f"{'above' if f.churn_when == HIGHER else 'below'} {f.neutral:g} (own past)"
    if f.bought_within is not None:
        rule += f", with a purchase in the last {f.bought_within} days"
    if f.rhythm:
        rule += f", with a mean purchase gap of {MIN_GAP_DAYS:g} day or more"
    return rule + (f'; empty: "{f.when_missing}"' if f.when_missing else "")


def markdown_table() -> str:
    """The README's feature table (markdown): name, meaning, unit, reason category and rule of every feature."""
    rows = ["| feature | meaning | unit | reason category | a reason when the value is |", "|---|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.meaning} | {f.unit} | `{f.reason_category}` | {reason_rule(f)} |" for f in DEFINITIONS]
    return "\n".join(rows)
