"""The oracles: true probabilities that a simulated customer makes no purchase in the horizon.

`no_purchase_probability` conditions on each customer's hidden parameters and hidden state (active, declining,
churned) on the cutoff day, and integrates the state chain and the daily Poisson purchase process of
`simulator.generate` exactly. It knows the state, which no event shows (a customer who churned yesterday looks like
one who did not buy yesterday): no model can reach it.

`events_only_probability` knows the same hidden parameters but not the state: it infers the state from the
customer's own events up to the cutoff (a forward filter over the daily state chain), then integrates the horizon
the same way. It is the ceiling of a model that sees only events, and still above any real model, which must also
learn each customer's rates from those events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.generate import (
    DECLINE_COMPLAINT_FACTOR,
    DECLINE_PURCHASE_FACTOR,
    DECLINE_SPEND_FACTOR,
    DECLINE_VISIT_FACTOR,
    SPEND_SIGMA,
    seasonality,
)


def no_purchase_probability(truth: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.Series:
    """P(no purchase in (as_of, as_of + horizon]) per customer arrived by as_of, indexed by customer_id."""
    start = pd.Timestamp(truth["sim_start"].iloc[0])
    k = int(np.ceil((pd.Timestamp(as_of) - start) / pd.Timedelta(days=1)))
    t = truth[truth["arrival_day"].to_numpy() < k]
    declining = (t["decline_start_day"].to_numpy() <= k) & (k < t["churn_day"].to_numpy())
    churned = t["churn_day"].to_numpy() <= k
    a = (~declining & ~churned).astype(float)
    d = declining.astype(float)
    c = churned.astype(float)
    return _no_purchase_from(a, d, c, t, start, k, horizon_days, "oracle_churn_probability")


def _no_purchase_from(a, d, c, t: pd.DataFrame, start: pd.Timestamp, k: int, horizon_days: int, name: str) -> pd.Series:
    """P(no purchase in the horizon) from the state probabilities (active, declining, churned) on day k."""
    lam = t["purchase_rate"].to_numpy()
    p_decline = -np.expm1(-t["decline_hazard"].to_numpy())
    p_churn = -np.expm1(-t["churn_hazard"].to_numpy())
    for s in seasonality(start, k, horizon_days):
        a_np = a * np.exp(-lam * s)
        d_np = d * np.exp(-lam * s * DECLINE_PURCHASE_FACTOR)
        a, d, c = a_np * (1 - p_decline), a_np * p_decline + d_np * (1 - p_churn), c + d_np * p_churn
    return pd.Series(a + d + c, index=pd.Index(t["customer_id"].to_numpy(), name="customer_id"), name=name)


def events_only_probability(truth: pd.DataFrame, days: pd.DataFrame, as_of: pd.Timestamp,
                            horizon_days: int) -> pd.Series:
    """P(no purchase in (as_of, as_of + horizon]) per customer arrived by as_of, from the hidden parameters and the
    customer's events before as_of only: `days` holds, per customer and day since the simulation start with events,
    `purchases`, `visits`, `complaints` and `log_amount` (the sum of log(amount) of that day's purchases). The state
    is filtered day by day (Poisson counts, log-normal spend; returns are not read)."""
    start = pd.Timestamp(truth["sim_start"].iloc[0])
    k = int(np.ceil((pd.Timestamp(as_of) - start) / pd.Timedelta(days=1)))
    t = truth[truth["arrival_day"].to_numpy() < k].reset_index(drop=True)
    n = len(t)
    row = pd.Series(np.arange(n), index=t["customer_id"].to_numpy())
    days = days[days["customer_id"].isin(row.index) & (days["day"] < k)]
    who, when = row[days["customer_id"]].to_numpy(), days["day"].to_numpy()
    counts = {c: days[c].to_numpy(dtype=float) for c in ("purchases", "visits", "complaints")}
    col = lambda name: t[name].to_numpy()  # noqa: E731
    lam_p, lam_v, lam_c, mu = col("purchase_rate"), col("visit_rate"), col("complaint_rate"), col("spend_mu")
    p_decline, p_churn = -np.expm1(-col("decline_hazard")), -np.expm1(-col("churn_hazard"))
    arrival = col("arrival_day")
    # log-likelihood of one event more, declining minus active; and of the daily rates (no event), per state
    per_event_p = np.log(DECLINE_PURCHASE_FACTOR)
    per_event_v = np.log(DECLINE_VISIT_FACTOR)
    per_event_c = np.log(DECLINE_COMPLAINT_FACTOR)
    s2 = np.log(DECLINE_SPEND_FACTOR)
    a, d, c = np.zeros(n), np.zeros(n), np.zeros(n)
    season = seasonality(start, 0, k)
    bounds = np.searchsorted(when, np.arange(k + 1))  # `days` is ordered by day
    for day in range(k):
        a[arrival == day] = 1.0
        alive = arrival <= day
        f = season[day]
        # no-event log-likelihoods (the Poisson terms without the counts), per state; churned: 0
        log_a = -(lam_p + lam_v) * f - lam_c
        log_d = -(lam_p * DECLINE_PURCHASE_FACTOR + lam_v * DECLINE_VISIT_FACTOR) * f - lam_c * DECLINE_COMPLAINT_FACTOR
        log_c = np.zeros(n)
        lo, hi = bounds[day], bounds[day + 1]
        if hi > lo:
            i = who[lo:hi]
            p, v, q = counts["purchases"][lo:hi], counts["visits"][lo:hi], counts["complaints"][lo:hi]
            # a declining customer's events: fewer purchases and visits, more complaints, smaller baskets
            spend = (s2 * (days["log_amount"].to_numpy()[lo:hi] - p * mu[i]) - p * s2 ** 2 / 2) / SPEND_SIGMA ** 2
            log_d[i] += p * per_event_p + v * per_event_v + q * per_event_c + spend
            log_c[i] = -np.inf  # the churned do nothing
        top = np.maximum(np.maximum(log_a, log_d), np.where(np.isfinite(log_c), log_c, -np.inf))
        wa, wd, wc = a * np.exp(log_a - top), d * np.exp(log_d - top), c * np.exp(log_c - top)
        total = wa + wd + wc
        total = np.where(total > 0, total, 1.0)
        wa, wd, wc = wa / total, wd / total, wc / total
        a = np.where(alive, wa * (1 - p_decline), a)
        d = np.where(alive, wa * p_decline + wd * (1 - p_churn), d)
        c = np.where(alive, wc + wd * p_churn, c)
    return _no_purchase_from(a, d, c, t, start, k, horizon_days, "events_only_churn_probability")
