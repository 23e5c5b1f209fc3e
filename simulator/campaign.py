"""Win-back contacts in the simulator, with a known effect: the simulation continues after a list's cutoff with
the contact applied to the list's target group only, and the true effect comes from potential outcomes.

Every customer has a hidden response to a contact, drawn once per campaign seed: most are `unmoved`, some are
`responder`s (a contact reverses their decline or wins them back from churn: back to active, with a fresh active
spell; an active responder starts declining later), some are `annoyed` (a contact pushes them out: an active
customer starts declining at once, a declining one churns in half the time left). So each customer has two state
chains from the contact day on: untreated (the chain `simulator.generate` drew) and treated; the continued
simulation uses the treated chain for target customers only. Because purchases, visits and complaints are daily Poisson draws on that
chain, the probability of any activity in the outcome window and the expected spend are exact sums over the
chain's days, for both chains: the truth needs no simulation noise.

Pure: functions return DataFrames; `churn/generate.py` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.generate import (
    DECLINE_COMPLAINT_FACTOR,
    DECLINE_PURCHASE_FACTOR,
    DECLINE_SPEND_FACTOR,
    DECLINE_VISIT_FACTOR,
    SimulationConfig,
    customer_parameters,
    period_events,
    seasonality,
)

RESPONSES = ("responder", "annoyed", "unmoved")
RESPONSE_SHARES = (0.20, 0.10, 0.70)
AMOUNT_SIGMA = 0.5  # sd of log(amount) in simulator.generate
SHOP_OPENS_S, SHOP_CLOSES_S = 7 * 3600, 23 * 3600  # events fall uniformly in these hours (simulator.generate)
MODELLED_ACTIVITY = ("purchase", "visit", "complaint")
NEVER = np.iinfo(np.int32).max


@dataclass(frozen=True)
class Campaign:
    """A contact on the day after a list's cutoff, and the outcome window that follows the cutoff."""

    as_of: pd.Timestamp  # the list's cutoff instant (its scores' as_of_time): the last day of the first simulation
    horizon_days: int  # the outcome window is (as_of, as_of + horizon_days]
    seed: int  # draws the responses and the continued events

    def start_day(self, cfg: SimulationConfig) -> int:
        """The first simulated day after the cutoff's day (the day the contact acts)."""
        return int((pd.Timestamp(self.as_of) - cfg.start_ts) // pd.Timedelta(days=1)) + 1

    def last_day_share(self) -> float:
        """The part of the window's last day (the cutoff's clock time on day start + horizon) inside the window,
        as a share of the day's event mass (events are uniform over shop hours)."""
        t = pd.Timestamp(self.as_of)
        seconds = (t - t.normalize()) / pd.Timedelta(seconds=1)
        return float(np.clip((seconds - SHOP_OPENS_S) / (SHOP_CLOSES_S - SHOP_OPENS_S), 0.0, 1.0))


def responses(customer_ids: pd.Series, seed: int) -> pd.Series:
    """Each customer's hidden response to a contact (RESPONSES, in RESPONSE_SHARES), from a keyed hash of the
    campaign seed and the id: the same for a customer whatever list or chunk it is in."""
    import hashlib

    key = f"campaign-{seed}".encode()
    u = np.fromiter((int.from_bytes(hashlib.blake2b(str(c).encode(), key=key, digest_size=8).digest(), "big") / 2.0**64
                     for c in customer_ids), dtype="float64", count=len(customer_ids))
    edges = np.cumsum(RESPONSE_SHARES)[:-1]
    return pd.Series(np.asarray(RESPONSES, dtype=object)[np.searchsorted(edges, u, side="right")],
                     index=customer_ids.index, name="response")


def treated_chain(params: pd.DataFrame, start_day: int, response: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    """The state chain each customer would follow if contacted on `start_day` (decline_start_day, churn_day),
    with the state they are in on that day before the contact (`active`, `declining`, `churned`).

    A responder that is declining or churned starts a fresh active spell then a fresh decline (lengths drawn
    with their own hazards; never churning earlier than untreated); an active responder starts declining no
    earlier than such a fresh spell would end. An annoyed active customer (a never-churner too) starts declining
    at once, for a freshly drawn decline (never churning later than untreated); an annoyed declining one churns
    in half the time it had left; an annoyed churned one stays gone."""
    a = params["decline_start_day"].to_numpy().astype(np.int64)
    c = params["churn_day"].to_numpy().astype(np.int64)
    state = np.where(c <= start_day, "churned", np.where(a <= start_day, "declining", "active"))
    n = len(params)
    hazard = params["decline_hazard"].to_numpy()
    fresh_active = np.where(hazard > 0, rng.geometric(-np.expm1(-np.maximum(hazard, 1e-12)), n), NEVER).astype(np.int64)
    fresh_decline = rng.geometric(-np.expm1(-params["churn_hazard"].to_numpy()), n).astype(np.int64)
    r = response.to_numpy()
    a1, c1 = a.copy(), c.copy()
    respond_declining = (r == "responder") & (state != "active")  # declining, or lapsed: won back
    a1[respond_declining] = np.minimum(start_day + fresh_active[respond_declining], NEVER)
    c1[respond_declining] = np.minimum(np.maximum(c, a1 + fresh_decline)[respond_declining], NEVER)
    respond_active = (r == "responder") & (state == "active") & (a < NEVER)
    later = np.maximum(a, np.minimum(start_day + fresh_active, NEVER))
    c1[respond_active] = np.minimum(later[respond_active] + (c - a)[respond_active], NEVER)
    a1[respond_active] = later[respond_active]
    annoyed_active = (r == "annoyed") & (state == "active")
    a1[annoyed_active] = start_day
    c1[annoyed_active] = np.minimum(c, start_day + fresh_decline)[annoyed_active]
    annoyed_declining = (r == "annoyed") & (state == "declining")
    c1[annoyed_declining] = start_day + np.ceil((c - start_day)[annoyed_declining] / 2).astype(np.int64)
    return pd.DataFrame({"customer_id": params["customer_id"].to_numpy(), "state_at_contact": state,
                         "decline_start_day": a1, "churn_day": c1}, index=params.index)


def expected_outcome(cfg: SimulationConfig, params: pd.DataFrame, first_day: int, n_days: int, last_day_share: float,
                     activity_types: tuple[str, ...]) -> pd.DataFrame:
    """Per customer, on the chain in `params` (decline_start_day, churn_day): P(at least one activity event on
    days first_day..first_day+n_days-1, the last day counted for `last_day_share` of its events) and the expected
    purchase amount in that window (index as `params`)."""
    unknown = sorted(set(activity_types) - set(MODELLED_ACTIVITY))
    if unknown:
        raise ValueError(f"the simulated campaign truth models activity of types {MODELLED_ACTIVITY}, not {unknown}")
    day = first_day + np.arange(n_days)[None, :]
    a, c = params["decline_start_day"].to_numpy()[:, None], params["churn_day"].to_numpy()[:, None]
    alive = (day >= params["arrival_day"].to_numpy()[:, None]) & (day < c)
    declining = (day >= a) & alive
    weight = np.ones(n_days)
    weight[-1] = last_day_share
    season = (seasonality(cfg.start_ts, first_day, n_days) * weight)[None, :]
    col = lambda name: params[name].to_numpy()[:, None]  # noqa: E731
    purchases = alive * col("purchase_rate") * season * np.where(declining, DECLINE_PURCHASE_FACTOR, 1.0)
    rates = {"purchase": purchases,
             "visit": alive * col("visit_rate") * season * np.where(declining, DECLINE_VISIT_FACTOR, 1.0),
             "complaint": alive * col("complaint_rate") * weight[None, :]
             * np.where(declining, DECLINE_COMPLAINT_FACTOR, 1.0)}
    total = sum(rates[t].sum(axis=1) for t in set(activity_types))
    mean_amount = np.exp(col("spend_mu") + np.where(declining, np.log(DECLINE_SPEND_FACTOR), 0.0)
                         + AMOUNT_SIGMA**2 / 2)
    return pd.DataFrame({"p_retained": -np.expm1(-total), "expected_spend": (purchases * mean_amount).sum(axis=1)},
                        index=params.index)


def continue_with_campaign(cfg: SimulationConfig, campaign: Campaign, targets: set[str], listed: pd.DataFrame,
                           activity_types: tuple[str, ...]) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Continue the simulation `cfg` (which ended on the cutoff's day) over the outcome window, one chunk of
    customers at a time: yields (events, truth). Target customers (`targets`) follow their treated chain, everyone
    else the chain they had. `truth` has one row per customer of the list (`listed`: customer_id, group): their
    response, state at the contact, and P(retained) and expected spend in the window untreated (`_0`) and
    treated (`_1`), whatever group they are in (both potential outcomes)."""
    start = campaign.start_day(cfg)
    if start != cfg.days:
        raise ValueError(f"the list's cutoff {pd.Timestamp(campaign.as_of)} is not on the simulation's last day "
                         f"({(cfg.start_ts + pd.Timedelta(days=cfg.days - 1)).date()}): continue from its end")
    n_days = campaign.horizon_days + 1  # the window ends on day start + horizon, at the cutoff's clock time
    share = campaign.last_day_share()
    groups = listed.set_index("customer_id")["group"]
    for chunk, first in enumerate(range(0, cfg.customers, cfg.chunk_customers)):
        n = min(cfg.chunk_customers, cfg.customers - first)
        params = customer_parameters(cfg, chunk, first, n)  # the same draws as the first simulation
        response = responses(params["customer_id"], campaign.seed)
        treated = treated_chain(params, start, response, np.random.default_rng([cfg.seed, chunk, 2, campaign.seed]))
        # two worlds, each with its own random stream: nobody contacted, everybody contacted; a target customer's
        # events come from the second, everyone else's from the first, so a control customer's events are
        # exactly what they would have been without any campaign
        tag = f"c{start}-"
        untouched = period_events(cfg, np.random.default_rng([cfg.seed, chunk, 3, campaign.seed]), params, start,
                                  n_days, tag)
        contacted_world = period_events(cfg, np.random.default_rng([cfg.seed, chunk, 4, campaign.seed]),
                                        params.assign(decline_start_day=treated["decline_start_day"].to_numpy(),
                                                      churn_day=treated["churn_day"].to_numpy()), start, n_days, tag)
        events = pd.concat([untouched[~untouched["customer_id"].isin(targets)],
                            contacted_world[contacted_world["customer_id"].isin(targets)]], ignore_index=True)
        events = events.sort_values(["customer_id", "event_time", "event_id"], kind="stable").reset_index(drop=True)
        on_list = params["customer_id"].isin(groups.index).to_numpy()
        p, t = params[on_list], treated[on_list]
        untreated = expected_outcome(cfg, p, start, n_days, share, activity_types)
        contacted = expected_outcome(cfg, p.assign(decline_start_day=t["decline_start_day"], churn_day=t["churn_day"]),
                                     start, n_days, share, activity_types)
        truth = pd.DataFrame({
            "customer_id": p["customer_id"].to_numpy(), "group": groups.reindex(p["customer_id"]).to_numpy(),
            "response": response[on_list].to_numpy(), "state_at_contact": t["state_at_contact"].to_numpy(),
            "p_retained_0": untreated["p_retained"].to_numpy(), "p_retained_1": contacted["p_retained"].to_numpy(),
            "expected_spend_0": untreated["expected_spend"].to_numpy(),
            "expected_spend_1": contacted["expected_spend"].to_numpy()})
        yield events, truth


def true_effect(truth: pd.DataFrame) -> dict:
    """The true incremental effect on the list's target group (the customers contacted): the mean over them of
    P(retained | contacted) - P(retained | not contacted) and of the expected spend difference, and the same
    times the target size (incremental customers and value); beside it, the effect over the whole list."""
    target = truth[truth["group"] == "target"]

    def effect(frame: pd.DataFrame) -> dict:
        r = float((frame["p_retained_1"] - frame["p_retained_0"]).mean()) if len(frame) else float("nan")
        s = float((frame["expected_spend_1"] - frame["expected_spend_0"]).mean()) if len(frame) else float("nan")
        return {"customers": len(frame), "retention_difference": r, "spend_difference": s,
                "retention_untreated": float(frame["p_retained_0"].mean()) if len(frame) else float("nan"),
                "retention_treated": float(frame["p_retained_1"].mean()) if len(frame) else float("nan")}

    out = effect(target)
    out["incremental_customers"] = out["retention_difference"] * len(target)
    out["incremental_value"] = out["spend_difference"] * len(target)
    return {"target": out, "whole_list": effect(truth),
            "responses_in_target": {str(k): int(v) for k, v in target["response"].value_counts().items()}}
