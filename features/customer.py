"""Point-in-time customer features: events as of a cutoff -> one row per customer.

Written as one portable SQL query (DuckDB here; the same SQL runs on Spark SQL with only the date
arithmetic macros changed), so it scans Parquet without loading the store into pandas. Only events
at or before `as_of` are read; customers with no event in the lookback are out of scope.
"""

from __future__ import annotations

import pandas as pd

# name -> (meaning, unit). The model's feature list, its signature and the README table come from here.
FEATURES: dict[str, tuple[str, str]] = {
    "days_since_last_event": ("time since the customer's last event of any type", "days"),
    "days_since_last_visit": ("time since the last visit (empty if never visited)", "days"),
    "days_since_last_purchase": ("time since the last purchase (empty if never bought)", "days"),
    "tenure_days": ("time since the customer's first event", "days"),
    "visits_30d": ("visits in the last 30 days", "count"),
    "visits_90d": ("visits in the last 90 days", "count"),
    "visits_365d": ("visits in the last 365 days", "count"),
    "purchases_30d": ("purchases in the last 30 days", "count"),
    "purchases_90d": ("purchases in the last 90 days", "count"),
    "purchases_365d": ("purchases in the last 365 days", "count"),
    "purchases_total": ("purchases since the first event", "count"),
    "spend_30d": ("purchase amount in the last 30 days", "currency"),
    "spend_90d": ("purchase amount in the last 90 days", "currency"),
    "spend_365d": ("purchase amount in the last 365 days", "currency"),
    "avg_basket_365d": ("average purchase amount in the last 365 days (empty if none)", "currency"),
    "purchase_gap_mean_days": ("mean time between consecutive purchases (needs 2+ purchases)", "days"),
    "purchase_gap_std_days": ("standard deviation of the time between purchases (needs 3+ purchases)", "days"),
    "overdue_ratio": ("days since last purchase / mean purchase gap: >1 means later than usual", "ratio"),
    "purchase_trend_90d": ("(purchases last 90d - previous 90d) / (sum of both); -1 = stopped buying", "ratio -1..1"),
    "spend_trend_90d": ("(spend last 90d - previous 90d) / (sum of both)", "ratio -1..1"),
    "visit_trend_90d": ("(visits last 90d - previous 90d) / (sum of both)", "ratio -1..1"),
    "returns_365d": ("returns in the last 365 days", "count"),
    "return_rate_365d": ("returns / purchases in the last 365 days", "ratio"),
    "complaints_90d": ("complaints in the last 90 days", "count"),
    "complaints_365d": ("complaints in the last 365 days", "count"),
    "complaint_share_365d": ("complaints / all events in the last 365 days", "share 0..1"),
    "discount_share_365d": ("share of purchases in the last 365 days bought with a discount", "share 0..1"),
}
FEATURE_NAMES: list[str] = list(FEATURES)

_DAY_SECONDS = 86400.0


def feature_sql(as_of: pd.Timestamp, lookback_days: int) -> str:
    """The feature query over a table `events` (contract columns) as of one cutoff."""
    t = pd.Timestamp(as_of).tz_convert("UTC").isoformat()
    asof = f"TIMESTAMPTZ '{t}'"

    def age(col: str) -> str:
        return f"(epoch({asof}) - epoch({col})) / {_DAY_SECONDS}"

    def within(days: int, etype: str | None = None, lo: int = 0) -> str:
        cond = f"e.event_time > {asof} - INTERVAL {days} DAY"
        if lo:
            cond += f" AND e.event_time <= {asof} - INTERVAL {lo} DAY"
        if etype:
            cond += f" AND e.event_type = '{etype}'"
        return cond

    def trend(cur: str, prev: str) -> str:
        return f"CASE WHEN ({cur}) + ({prev}) > 0 THEN (({cur}) - ({prev})) / (({cur}) + ({prev})) END"

    cnt = lambda cond: f"CAST(count(*) FILTER (WHERE {cond}) AS DOUBLE)"  # noqa: E731
    # money is summed as DECIMAL: exact, so the result does not depend on DuckDB's parallel summation order
    amt = lambda cond: f"CAST(coalesce(sum(CAST(e.amount AS DECIMAL(18, 4))) FILTER (WHERE {cond}), 0) AS DOUBLE)"  # noqa: E731
    return f"""
WITH past AS (
    SELECT customer_id, event_type, event_time, amount, discount FROM events WHERE event_time <= {asof}
),
gaps AS (
    -- one pass over purchases only (the window needs them sorted per customer); exact integer sums
    -- (microseconds), so parallel aggregation order cannot change the result
    SELECT customer_id,
           sum(gap) / count(*) / {_DAY_SECONDS * 1e6} AS gap_mean,
           CASE WHEN count(*) > 1 THEN
               sqrt(greatest(0.0, (CAST(sum(gap * gap) AS DOUBLE) - CAST(sum(gap) AS DOUBLE) ^ 2 / count(*))
                    / (count(*) - 1))) / {_DAY_SECONDS * 1e6}
           END AS gap_std
    FROM (
        SELECT customer_id,
               CAST(epoch_us(event_time) - epoch_us(lag(event_time) OVER (PARTITION BY customer_id ORDER BY event_time))
                    AS HUGEINT) AS gap
        FROM past WHERE event_type = 'purchase'
    ) WHERE gap IS NOT NULL
    GROUP BY customer_id
),
agg AS (
    SELECT e.customer_id,
        {age('max(e.event_time)')} AS days_since_last_event,
        {age("max(e.event_time) FILTER (WHERE e.event_type = 'visit')")} AS days_since_last_visit,
        {age("max(e.event_time) FILTER (WHERE e.event_type = 'purchase')")} AS days_since_last_purchase,
        {age('min(e.event_time)')} AS tenure_days,
        {cnt(within(30, 'visit'))} AS visits_30d,
        {cnt(within(90, 'visit'))} AS visits_90d,
        {cnt(within(365, 'visit'))} AS visits_365d,
        {cnt(within(180, 'visit', 90))} AS visits_prev_90d,
        {cnt(within(30, 'purchase'))} AS purchases_30d,
        {cnt(within(90, 'purchase'))} AS purchases_90d,
        {cnt(within(365, 'purchase'))} AS purchases_365d,
        {cnt(within(180, 'purchase', 90))} AS purchases_prev_90d,
        {cnt("e.event_type = 'purchase'")} AS purchases_total,
        {amt(within(30, 'purchase'))} AS spend_30d,
        {amt(within(90, 'purchase'))} AS spend_90d,
        {amt(within(365, 'purchase'))} AS spend_365d,
        {amt(within(180, 'purchase', 90))} AS spend_prev_90d,
        {cnt(within(365, 'return'))} AS returns_365d,
        {cnt(within(90, 'complaint'))} AS complaints_90d,
        {cnt(within(365, 'complaint'))} AS complaints_365d,
        {cnt(within(365))} AS events_365d,
        {cnt(within(365, 'purchase') + ' AND e.discount > 0')} AS discounted_365d
    FROM past e GROUP BY e.customer_id
    -- in scope: customers with an event in the lookback (one aggregation pass, no join back to the events)
    HAVING max(e.event_time) > {asof} - INTERVAL {int(lookback_days)} DAY
)
SELECT a.customer_id,
    a.days_since_last_event, a.days_since_last_visit, a.days_since_last_purchase, a.tenure_days,
    a.visits_30d, a.visits_90d, a.visits_365d,
    a.purchases_30d, a.purchases_90d, a.purchases_365d, a.purchases_total,
    a.spend_30d, a.spend_90d, a.spend_365d,
    CASE WHEN a.purchases_365d > 0 THEN a.spend_365d / a.purchases_365d END AS avg_basket_365d,
    g.gap_mean AS purchase_gap_mean_days,
    g.gap_std AS purchase_gap_std_days,
    CASE WHEN g.gap_mean > 0 THEN a.days_since_last_purchase / g.gap_mean END AS overdue_ratio,
    {trend('a.purchases_90d', 'a.purchases_prev_90d')} AS purchase_trend_90d,
    {trend('a.spend_90d', 'a.spend_prev_90d')} AS spend_trend_90d,
    {trend('a.visits_90d', 'a.visits_prev_90d')} AS visit_trend_90d,
    a.returns_365d,
    CASE WHEN a.purchases_365d > 0 THEN a.returns_365d / a.purchases_365d END AS return_rate_365d,
    a.complaints_90d, a.complaints_365d,
    a.complaints_365d / a.events_365d AS complaint_share_365d,
    CASE WHEN a.purchases_365d > 0 THEN a.discounted_365d / a.purchases_365d END AS discount_share_365d
FROM agg a LEFT JOIN gaps g USING (customer_id)
ORDER BY a.customer_id
"""


def customer_features(events, as_of: pd.Timestamp, lookback_days: int = 365) -> pd.DataFrame:
    """One row per customer active in the lookback before `as_of`, indexed by customer_id, float64 features.

    `events` is a DuckDB relation (or anything `duckdb` can scan, e.g. a pandas DataFrame) with the
    contract columns.
    """
    rel = _relation(events)
    out = rel.query("events", feature_sql(as_of, lookback_days)).df()
    out = out.set_index("customer_id")
    out.index = out.index.astype(str)
    return out[FEATURE_NAMES].astype("float64")


def churn_labels(events, as_of: pd.Timestamp, horizon_days: int, customers: pd.Index,
                 activity_types: tuple[str, ...] = ("purchase",)) -> pd.Series:
    """1 if the customer has no activity event in (as_of, as_of + horizon], else 0; indexed like `customers`."""
    t = pd.Timestamp(as_of).tz_convert("UTC").isoformat()
    types = ", ".join(f"'{x}'" for x in activity_types)
    sql = f"""
        SELECT DISTINCT customer_id FROM events
        WHERE event_time > TIMESTAMPTZ '{t}' AND event_time <= TIMESTAMPTZ '{t}' + INTERVAL {int(horizon_days)} DAY
          AND event_type IN ({types})"""
    active = set(_relation(events).query("events", sql).df()["customer_id"].astype(str))
    return pd.Series([0 if c in active else 1 for c in customers], index=customers, name="churned", dtype="int64")


def _relation(events):
    import duckdb

    if isinstance(events, duckdb.DuckDBPyRelation):
        return events
    return duckdb.from_df(events) if isinstance(events, pd.DataFrame) else duckdb.arrow(events)
