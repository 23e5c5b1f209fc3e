"""Write simulated events into the landing folder and the ground truth under truth/."""

from __future__ import annotations

import logging

import pandas as pd

from expectations.contract import EVENT_SCHEMA
from simulator.generate import SimulationConfig, simulate
from storage import catalog, layout

log = logging.getLogger("churn.generate")


def generate(paths: layout.Paths, cfg: SimulationConfig) -> dict:
    """Stream the simulation to Parquet landing files, one per chunk of customers; returns counts."""
    truths, files, counts = [], [], {}
    n_events = 0
    for chunk, (events, truth) in enumerate(simulate(cfg)):
        name = f"generated-s{cfg.seed}-{chunk:05d}.parquet"
        files.append(str(catalog.write_landing_file(paths, events, name, EVENT_SCHEMA)))
        truths.append(truth)
        n_events += len(events)
        log.info("simulated %s of %s customers: %s events", f"{min((chunk + 1) * cfg.chunk_customers, cfg.customers):,}",
                 f"{cfg.customers:,}", f"{n_events:,}")
        for k, v in events["event_type"].value_counts().items():
            counts[k] = counts.get(k, 0) + int(v)
    truth_path = catalog.write_truth(paths, truths)
    return {"customers": cfg.customers, "days": cfg.days, "seed": cfg.seed, "start": cfg.start,
            "events": n_events, "by_type": counts, "files": files, "truth": str(truth_path)}


def continue_with_campaign(paths: layout.Paths, cfg: SimulationConfig, list_id: str, seed: int | None = None,
                           activity_types: tuple[str, ...] = ("purchase",)) -> dict:
    """Continue the simulation `cfg` (which `generate` wrote) over the outcome window of the win-back list
    `list_id`, contacting its target group only; writes the new events to landing/ and the true effect to
    truth/campaign-<list_id>.parquet (per customer of the list) and .json (the target group's effect)."""
    from simulator import campaign as simulated

    record = catalog.list_record(paths, list_id)
    listed = catalog.read_list(paths, record)
    as_of, horizon_days = catalog.list_cutoff(paths, record)
    campaign = simulated.Campaign(as_of=as_of, horizon_days=horizon_days, seed=cfg.seed if seed is None else seed)
    targets = set(listed.loc[listed["group"] == "target", "customer_id"].astype(str))
    truths, files, n_events = [], [], 0
    for chunk, (events, truth) in enumerate(simulated.continue_with_campaign(cfg, campaign, targets, listed,
                                                                               activity_types)):
        name = f"campaign-{list_id}-s{cfg.seed}-{chunk:05d}.parquet"
        files.append(str(catalog.write_landing_file(paths, events, name, EVENT_SCHEMA)))
        truths.append(truth)
        n_events += len(events)
    effect = {"list_id": list_id, "as_of": as_of.isoformat(), "horizon_days": horizon_days,
              "activity_types": list(activity_types), "campaign_seed": campaign.seed,
              **simulated.true_effect(pd.concat(truths, ignore_index=True))}
    truth_path = catalog.write_campaign_truth(paths, list_id, truths, effect)
    log.info("continued the simulation over %d days after %s with list %s's %s target customers contacted: "
             "%s events", horizon_days, as_of.date(), list_id, f"{len(targets):,}", f"{n_events:,}")
    return {**effect, "events": n_events, "files": files, "truth": str(truth_path)}
