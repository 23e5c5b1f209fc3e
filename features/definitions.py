"""Every customer feature declared once, as a record; the query, the reasons and the docs come from these.

`features.customer` builds the feature SQL from the records, `models.reasons` their categories and
sentences, `models.baselines` its columns (by role) and the README its feature table. Pure: SQL and
text as strings, no Prefect, MLflow or paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DAY_SECONDS = 86400.0
# placeholder for the cutoff's timestamp literal in aggregate SQL; the feature query fills it in
AS_OF = "{as_of}"

# (value, mean purchase gap, overdue ratio) -> reason text, for wordings a template cannot express
Sentence = Callable[[float, float, float], str]


@dataclass(frozen=True)
class Aggregate:
    """One per-customer aggregate over the past events `e`: a column of the feature query's `agg` step."""

    name: str
    expression: str


@dataclass(frozen=True)
class Feature:
    """One model feature: its meaning and unit, how it is computed and how it reads as a churn reason."""

    name: str
    meaning: str
    unit: str
    reason_category: str  # the win-back action table is keyed by these
    # template over {v} (the value), {gap}, {overdue} (those roles' values) and {w} (the window), or a callable
    sentence: str | Sentence
    # SQL over the `agg` (a) and `gaps` (g) columns; left empty when the feature is its own aggregate: a.<name>
    expression: str = ""
    aggregate: str | None = None  # SQL over the past events `e` when the feature is itself a per-customer aggregate
    when_missing: str = ""  # the reason text for an empty value; left empty: "<name> unknown"
    # the part it plays elsewhere: the baselines' recency/frequency/monetary/tenure, or {gap}/{overdue} in sentences
    role: str | None = None
    # bounded by the history the store holds at the cutoff (it grows as the store gets older, whatever the
    # customers do): the drift check compares it relative to that history, not as an absolute number
    grows_with_history: bool = False

    def __post_init__(self):
        if not self.expression:
            if self.aggregate is None:
                raise ValueError(f"feature {self.name} needs an expression or an aggregate")
            object.__setattr__(self, "expression", f"a.{self.name}")
        if not self.when_missing:
            object.__setattr__(self, "when_missing", f"{self.name} unknown")

    @property
    def window(self) -> str:
        """The window named by the feature's suffix: "90" for visits_90d."""
        return self.name.rsplit("_", 1)[-1].removesuffix("d")


def _age(col: str) -> str:
    return f"(epoch({AS_OF}) - epoch({col})) / {DAY_SECONDS}"


def _within(days: int, etype: str | None = None, lo: int = 0) -> str:
    cond = f"e.event_time > {AS_OF} - INTERVAL {days} DAY"
    if lo:
        cond += f" AND e.event_time <= {AS_OF} - INTERVAL {lo} DAY"
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


def _no_purchase_for(v: float, gap: float, overdue: float) -> str:
    late = f", {overdue:.1f}x longer than usual" if overdue == overdue and overdue >= 1.5 else ""
    return f"no purchase for {v:.0f} days" + late


def _customer_for(v: float, gap: float, overdue: float) -> str:
    return f"customer for only {v:.0f} days" if v < 180 else f"customer for {v:.0f} days"


def _trend_sentence(what: str) -> Sentence:
    def text(v: float, gap: float, overdue: float) -> str:
        return (f"{what} down {abs(v) * 100:.0f}% on the previous 90 days" if v < 0
                else f"{what} changed {v * 100:+.0f}% on the previous 90 days")
    return text


# aggregates the features are computed from that are not features themselves
INTERMEDIATES: tuple[Aggregate, ...] = (
    Aggregate("visits_prev_90d", _count(_within(180, "visit", 90))),
    Aggregate("purchases_prev_90d", _count(_within(180, "purchase", 90))),
    Aggregate("spend_prev_90d", _amount(_within(180, "purchase", 90))),
    Aggregate("events_365d", _count(_within(365))),
    Aggregate("discounted_365d", _count(_within(365, "purchase") + " AND e.discount > 0")),
)

# in model order: the feature table's columns, the model's signature and the README table follow it
DEFINITIONS: tuple[Feature, ...] = (
    Feature("days_since_last_event", "time since the customer's last event of any type", "days",
            "overdue", "no activity at all for {v:.0f} days",
            aggregate=_age("max(e.event_time)")),
    Feature("days_since_last_visit", "time since the last visit (empty if never visited)", "days",
            "disengaged", "no visit for {v:.0f} days",
            aggregate=_age("max(e.event_time) FILTER (WHERE e.event_type = 'visit')"),
            when_missing="has never visited"),
    Feature("days_since_last_purchase", "time since the last purchase (empty if never bought)", "days",
            "overdue", _no_purchase_for,
            aggregate=_age("max(e.event_time) FILTER (WHERE e.event_type = 'purchase')"),
            when_missing="has never bought", role="recency"),
    Feature("tenure_days", "time since the customer's first event", "days",
            "disengaged", _customer_for,
            aggregate=_age("min(e.event_time)"), role="tenure", grows_with_history=True),
    Feature("visits_30d", "visits in the last 30 days", "count",
            "disengaged", "{v:.0f} visits in the last {w} days", aggregate=_count(_within(30, "visit"))),
    Feature("visits_90d", "visits in the last 90 days", "count",
            "disengaged", "{v:.0f} visits in the last {w} days", aggregate=_count(_within(90, "visit"))),
    Feature("visits_365d", "visits in the last 365 days", "count",
            "disengaged", "{v:.0f} visits in the last {w} days", aggregate=_count(_within(365, "visit"))),
    Feature("purchases_30d", "purchases in the last 30 days", "count",
            "spend_falling", "{v:.0f} purchases in the last {w} days", aggregate=_count(_within(30, "purchase"))),
    Feature("purchases_90d", "purchases in the last 90 days", "count",
            "spend_falling", "{v:.0f} purchases in the last {w} days", aggregate=_count(_within(90, "purchase"))),
    Feature("purchases_365d", "purchases in the last 365 days", "count",
            "spend_falling", "{v:.0f} purchases in the last {w} days", aggregate=_count(_within(365, "purchase")),
            role="frequency"),
    Feature("purchases_total", "purchases since the first event", "count",
            "spend_falling", "{v:.0f} purchases in total", aggregate=_count("e.event_type = 'purchase'"),
            grows_with_history=True),
    Feature("spend_30d", "purchase amount in the last 30 days", "currency",
            "spend_falling", "spent {v:.2f} in the last {w} days", aggregate=_amount(_within(30, "purchase"))),
    Feature("spend_90d", "purchase amount in the last 90 days", "currency",
            "spend_falling", "spent {v:.2f} in the last {w} days", aggregate=_amount(_within(90, "purchase"))),
    Feature("spend_365d", "purchase amount in the last 365 days", "currency",
            "spend_falling", "spent {v:.2f} in the last {w} days", aggregate=_amount(_within(365, "purchase")),
            role="monetary"),
    Feature("avg_basket_365d", "average purchase amount in the last 365 days (empty if none)", "currency",
            "spend_falling", "small baskets: {v:.2f} on average",
            "CASE WHEN a.purchases_365d > 0 THEN a.spend_365d / a.purchases_365d END",
            when_missing="no purchase in the last year"),
    Feature("purchase_gap_mean_days", "mean time between consecutive purchases (needs 2+ purchases)", "days",
            "overdue", "buys only every {v:.0f} days on average", "g.gap_mean",
            when_missing="fewer than two purchases so far", role="gap"),
    Feature("purchase_gap_std_days", "standard deviation of the time between purchases (needs 3+ purchases)", "days",
            "overdue", "irregular buying: gaps vary by {v:.0f} days", "g.gap_std",
            when_missing="too few purchases for a rhythm"),
    Feature("overdue_ratio", "days since last purchase / mean purchase gap: >1 means later than usual", "ratio",
            "overdue", "{v:.1f}x their usual {gap:.0f} days between purchases",
            "CASE WHEN g.gap_mean > 0 THEN a.days_since_last_purchase / g.gap_mean END",
            when_missing="no regular buying rhythm yet", role="overdue"),
    Feature("purchase_trend_90d", "(purchases last 90d - previous 90d) / (sum of both); -1 = stopped buying",
            "ratio -1..1", "spend_falling", _trend_sentence("purchases"),
            _trend("a.purchases_90d", "a.purchases_prev_90d")),
    Feature("spend_trend_90d", "(spend last 90d - previous 90d) / (sum of both)", "ratio -1..1",
            "spend_falling", _trend_sentence("spend"), _trend("a.spend_90d", "a.spend_prev_90d")),
    Feature("visit_trend_90d", "(visits last 90d - previous 90d) / (sum of both)", "ratio -1..1",
            "disengaged", _trend_sentence("visits"), _trend("a.visits_90d", "a.visits_prev_90d")),
    Feature("returns_365d", "returns in the last 365 days", "count",
            "complaints", "{v:.0f} returns in the last year", aggregate=_count(_within(365, "return"))),
    Feature("return_rate_365d", "returns / purchases in the last 365 days", "ratio",
            "complaints", "returned {v:.0%} of purchases in the last year",
            "CASE WHEN a.purchases_365d > 0 THEN a.returns_365d / a.purchases_365d END"),
    Feature("complaints_90d", "complaints in the last 90 days", "count",
            "complaints", "{v:.0f} complaints in the last {w} days", aggregate=_count(_within(90, "complaint"))),
    Feature("complaints_365d", "complaints in the last 365 days", "count",
            "complaints", "{v:.0f} complaints in the last {w} days", aggregate=_count(_within(365, "complaint"))),
    Feature("complaint_share_365d", "complaints / all events in the last 365 days", "share 0..1",
            "complaints", "complaints are {v:.0%} of their contacts this year",
            "a.complaints_365d / a.events_365d"),
    Feature("discount_share_365d", "share of purchases in the last 365 days bought with a discount", "share 0..1",
            "price_sensitive", "{v:.0%} of purchases made with a discount",
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


def markdown_table() -> str:
    """The README's feature table (markdown): name, meaning, unit and reason category of every feature."""
    rows = ["| feature | meaning | unit | reason category |", "|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.meaning} | {f.unit} | `{f.reason_category}` |" for f in DEFINITIONS]
    return "\n".join(rows)
