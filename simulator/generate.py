"""A customer-lifecycle simulator that produces realistic visit/purchase/return/complaint events.

Every customer has hidden parameters and moves through three states, day by day:
``active -> declining -> churned`` (never-churners stay active). While declining they visit
less, buy less, spend less, return more and complain more; once churned they do nothing. Rates
follow weekly and yearly seasonality, and new customers keep arriving. Because the state chain
and the purchase process are simulated on the same daily grid that `simulator.oracle` integrates
over, the oracle's probabilities are exact for this data.

Pure: functions return DataFrames; `flows/` writes them. Customers are simulated in chunks, so
memory is bounded by the chunk size, not by the number of customers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEKDAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 0.85])  # Monday..Sunday
WEEKDAY_FACTOR = WEEKDAY_FACTOR / WEEKDAY_FACTOR.mean()
YEARLY_AMPLITUDE = 0.3
YEARLY_PEAK_DOY = 340  # early December
DECLINE_PURCHASE_FACTOR = 0.35
DECLINE_VISIT_FACTOR = 0.45
DECLINE_COMPLAINT_FACTOR = 8.0
DECLINE_SPEND_FACTOR = 0.8
SPEND_SIGMA = 0.5  # sd of log(amount) around the customer's spend_mu
DECLINE_RETURN_FACTOR = 2.0
CATEGORIES = np.array(["home", "garden", "kitchen", "toys", "gifts"])
CHANNELS = np.array(["web", "store", "app"])


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: how many customers over how many days from which start date."""

    customers: int
    days: int
    seed: int
    start: str = "2023-01-01"
    initial_share: float = 0.35  # customers already there on day 0; the rest arrive over time
    churner_share: float = 0.8
    chunk_customers: int = 10_000

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")


def seasonality(start: pd.Timestamp, first_day: int, n_days: int) -> np.ndarray:
    """Multiplicative activity factor per day (weekly x yearly), mean about 1."""
    days = pd.date_range(start + pd.Timedelta(days=first_day), periods=n_days, freq="D")
    weekly = WEEKDAY_FACTOR[days.dayofweek.to_numpy()]
    yearly = 1.0 + YEARLY_AMPLITUDE * np.cos(2 * np.pi * (days.dayofyear.to_numpy() - YEARLY_PEAK_DOY) / 365.25)
    return weekly * yearly


def customer_parameters(cfg: SimulationConfig, chunk: int, first: int, n: int) -> pd.DataFrame:
    """Hidden parameters and state-change days of customers first..first+n-1 (one chunk)."""
    rng = np.random.default_rng([cfg.seed, chunk, 0])
    arrives_later = rng.random(n) >= cfg.initial_share
    arrival = np.where(arrives_later, rng.integers(0, cfg.days, n), 0)
    purchase_rate = np.clip(rng.gamma(2.0, 1 / 44.0, n), 1 / 250, 0.5)
    visit_rate = purchase_rate * rng.gamma(3.0, 1.2, n)
    complaint_rate = rng.gamma(1.0, 0.0012, n)
    spend_mu = rng.normal(np.log(35.0), 0.6, n)
    return_prob = rng.beta(1.0, 16.0, n)
    discount_affinity = rng.beta(1.0, 3.0, n)
    churner = rng.random(n) < cfg.churner_share
    mean_active_days = np.exp(rng.normal(np.log(320.0), 0.7, n))
    decline_hazard = np.where(churner, 1.0 / mean_active_days, 0.0)
    churn_hazard = 1.0 / rng.uniform(20.0, 70.0, n)
    # days until the first declining day / first churned day (geometric: >= 1 day in each state)
    active_len = np.where(churner, rng.geometric(-np.expm1(-np.maximum(decline_hazard, 1e-12))), np.iinfo(np.int32).max)
    decline_len = rng.geometric(-np.expm1(-churn_hazard))
    decline_start = np.where(churner, arrival + active_len, np.iinfo(np.int32).max).astype(np.int64)
    churn_day = np.where(churner, decline_start + decline_len, np.iinfo(np.int32).max).astype(np.int64)
    ids = np.char.add("C", np.char.zfill(np.arange(first, first + n).astype(str), 7))
    return pd.DataFrame({
        "customer_id": ids.astype(object),
        "arrival_day": arrival.astype(np.int64),
        "purchase_rate": purchase_rate,
        "visit_rate": visit_rate,
        "complaint_rate": complaint_rate,
        "spend_mu": spend_mu,
        "return_prob": return_prob,
        "discount_affinity": discount_affinity,
        "churner": churner,
        "decline_hazard": decline_hazard,
        "churn_hazard": churn_hazard,
        "decline_start_day": decline_start,
        "churn_day": churn_day,
        "channel": CHANNELS[rng.integers(0, len(CHANNELS), n)].astype(object),
    })


def _state_multipliers(params: pd.DataFrame, n_days: int, first_day: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer x day (days first_day..first_day+n_days-1): alive-and-arrived mask, declining mask, arrived."""
    day = first_day + np.arange(n_days)[None, :]
    arrived = day >= params["arrival_day"].to_numpy()[:, None]
    declining = (day >= params["decline_start_day"].to_numpy()[:, None]) & (day < params["churn_day"].to_numpy()[:, None])
    alive = arrived & (day < params["churn_day"].to_numpy()[:, None])
    return alive, declining, arrived


def _times(cfg: SimulationConfig, rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Event instants (us since epoch) within the given simulated days, in shop hours 07:00-23:00 UTC."""
    start_us = cfg.start_ts.value // 1000
    seconds = rng.uniform(7 * 3600, 23 * 3600, len(days))
    return start_us + days.astype(np.int64) * 86_400_000_000 + (seconds * 1e6).astype(np.int64)


def chunk_events(cfg: SimulationConfig, chunk: int, params: pd.DataFrame) -> pd.DataFrame:
    """All events of one chunk of customers, sorted by customer and time."""
    return period_events(cfg, np.random.default_rng([cfg.seed, chunk, 1]), params, 0, cfg.days)


def period_events(cfg: SimulationConfig, rng: np.random.Generator, params: pd.DataFrame, first_day: int,
                  n_days: int, tag: str = "") -> pd.DataFrame:
    """The events of customers `params` on days first_day..first_day+n_days-1 (their state chain as the
    decline_start_day and churn_day columns say), sorted by customer and time; `tag` goes into the event and
    order ids so that a continued simulation never repeats an id of the first one."""
    season = seasonality(cfg.start_ts, first_day, n_days)[None, :]
    alive, declining, _ = _state_multipliers(params, n_days, first_day)
    col = lambda name: params[name].to_numpy()[:, None]  # noqa: E731

    p_rate = np.where(alive, col("purchase_rate") * season * np.where(declining, DECLINE_PURCHASE_FACTOR, 1.0), 0.0)
    v_rate = np.where(alive, col("visit_rate") * season * np.where(declining, DECLINE_VISIT_FACTOR, 1.0), 0.0)
    c_rate = np.where(alive, col("complaint_rate") * np.where(declining, DECLINE_COMPLAINT_FACTOR, 1.0), 0.0)
    frames = []
    for etype, rate in (("purchase", p_rate), ("visit", v_rate), ("complaint", c_rate)):
        counts = rng.poisson(rate)
        cust, day = np.nonzero(counts)
        reps = counts[cust, day]
        cust, day = np.repeat(cust, reps), np.repeat(day, reps)
        frames.append(pd.DataFrame({"cust": cust, "day": day, "event_type": etype,
                                    "t": _times(cfg, rng, first_day + day), "declining": declining[cust, day]}))
    ev = pd.concat(frames, ignore_index=True)
    ev = ev.sort_values(["cust", "t"], kind="stable").reset_index(drop=True)

    is_p = (ev["event_type"] == "purchase").to_numpy()
    k = int(is_p.sum())
    cust_p = ev.loc[is_p, "cust"].to_numpy()
    decl_p = ev.loc[is_p, "declining"].to_numpy()
    mu = params["spend_mu"].to_numpy()[cust_p] + np.where(decl_p, np.log(DECLINE_SPEND_FACTOR), 0.0)
    amount = np.round(np.exp(rng.normal(mu, SPEND_SIGMA)), 2)
    discounted = rng.random(k) < params["discount_affinity"].to_numpy()[cust_p]
    discount = np.where(discounted, rng.choice([0.1, 0.15, 0.2, 0.3], k), 0.0)
    quantity = 1.0 + rng.poisson(2.0, k)
    category = CATEGORIES[rng.integers(0, len(CATEGORIES), k)]

    ev["amount"] = np.nan
    ev["discount"] = np.nan
    ev["quantity"] = np.nan
    ev["category"] = None
    ev.loc[is_p, "amount"] = amount
    ev.loc[is_p, "discount"] = discount
    ev.loc[is_p, "quantity"] = quantity
    ev.loc[is_p, "category"] = category
    ev["seq"] = ev.groupby("cust").cumcount()
    cid = params["customer_id"].to_numpy()[ev["cust"].to_numpy()]
    ev["customer_id"] = cid
    ev["order_id"] = None
    ev.loc[is_p, "order_id"] = "O" + ev.loc[is_p, "customer_id"].str[1:] + "-" + tag + ev.loc[is_p, "seq"].astype(str)

    # returns: some purchases come back 1-30 days later, for part of the amount
    ret_p = params["return_prob"].to_numpy()[cust_p] * np.where(decl_p, DECLINE_RETURN_FACTOR, 1.0)
    returned = rng.random(k) < ret_p
    purchases = ev.loc[is_p].loc[returned]
    delay_us = (rng.uniform(1, 30, len(purchases)) * 86_400e6).astype(np.int64)
    end_us = (cfg.start_ts + pd.Timedelta(days=first_day + n_days)).value // 1000
    rets = pd.DataFrame({
        "cust": purchases["cust"].to_numpy(), "event_type": "return",
        "t": purchases["t"].to_numpy() + delay_us,
        "amount": np.round(purchases["amount"].to_numpy() * rng.uniform(0.2, 1.0, len(purchases)), 2),
        "order_id": purchases["order_id"].to_numpy(), "customer_id": purchases["customer_id"].to_numpy(),
        "quantity": np.ones(len(purchases)), "category": purchases["category"].to_numpy(),
    })
    rets = rets[rets["t"] < end_us]
    ev = pd.concat([ev.drop(columns=["day", "declining", "seq"]), rets], ignore_index=True)
    ev = ev.sort_values(["cust", "t", "event_type"], kind="stable").reset_index(drop=True)
    ev["event_id"] = "E" + ev["customer_id"].str[1:] + "-" + tag + ev.groupby("cust").cumcount().astype(str)
    ev["channel"] = params["channel"].to_numpy()[ev["cust"].to_numpy()]
    ev["event_time"] = pd.to_datetime(ev["t"], unit="us", utc=True)
    return ev[["event_id", "customer_id", "event_type", "event_time", "amount", "order_id", "channel",
               "category", "discount", "quantity"]]


def truth_frame(cfg: SimulationConfig, params: pd.DataFrame) -> pd.DataFrame:
    """The ground truth of one chunk: hidden parameters and true state-change instants."""
    start = cfg.start_ts
    never = np.iinfo(np.int32).max

    def day_to_ts(days: pd.Series) -> pd.Series:
        d = days.to_numpy()
        us = start.value // 1000 + np.minimum(d, never) * 86_400_000_000
        ts = pd.Series(pd.to_datetime(us, unit="us", utc=True), index=days.index)
        return ts.where(d < never)

    out = params.drop(columns=["channel"]).copy()
    out["arrival_time"] = day_to_ts(params["arrival_day"])
    out["decline_start_time"] = day_to_ts(params["decline_start_day"])
    out["churn_time"] = day_to_ts(params["churn_day"])
    out["sim_start"] = start
    return out


def simulate(cfg: SimulationConfig) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield (events, ground truth) one chunk of customers at a time; same config, same output."""
    for chunk, first in enumerate(range(0, cfg.customers, cfg.chunk_customers)):
        n = min(cfg.chunk_customers, cfg.customers - first)
        params = customer_parameters(cfg, chunk, first, n)
        yield chunk_events(cfg, chunk, params), truth_frame(cfg, params)
