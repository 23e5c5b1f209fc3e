"""Write simulated events into the landing folder and the ground truth under truth/."""

from __future__ import annotations

import logging

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



