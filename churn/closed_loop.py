"""The closed campaign loop on generated data: simulate to day T, run the pipeline at T (ingest, train, score,
win-back list with its hold-out), let the simulator contact the list's target group and continue over the
outcome window, ingest that, and measure the list's outcome beside the simulator's true effect.

Calls the pipeline's functions directly (no Prefect server); MLflow is the SQLite store under the home folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger("churn.closed_loop")

# a cheap model: the loop measures the campaign, not the model
QUICK_MODEL = {"n_estimators": 80, "max_depth": 3}


def closed_loop(home: Path, customers: int = 3000, days: int = 540, seed: int = 1, horizon_days: int = 90,
                control_share: float = 0.3, log_runs: bool = True, **settings_overrides) -> dict:
    """Run the loop once in a new data folder `home`; returns the list's outcome entry (as `churn outcomes`
    gives it, with `simulated_truth`) and the simulator's truth summary."""
    from churn.generate import continue_with_campaign, generate
    from churn.settings import defaults
    from flows.ingest import ingest_file
    from flows.outcomes import campaign_outcomes
    from flows.score import score
    from flows.train import build_snapshots, register, train
    from flows.winback import winback
    from simulator.generate import SimulationConfig
    from storage import layout, sources

    paths = layout.Paths(home)
    settings = defaults(home, horizon_days=horizon_days, winback_control_share=control_share, btyd_baselines=False,
                        bootstrap_resamples=100, n_train_cutoffs=2, model=QUICK_MODEL, seed=seed,
                        **settings_overrides)
    now = pd.Timestamp.now(tz="UTC")
    cfg = SimulationConfig(customers=customers, days=days, seed=seed, chunk_customers=max(customers, 1))

    def ingest_landing() -> None:
        for f in sources.landing_files(paths):
            ingest_file(settings.ingest_config(settle_seconds=0.0), f, now=now)

    generate(paths, cfg)
    ingest_landing()
    tc = settings.train_config()
    _, info = build_snapshots(tc, None)
    result, frame = train(tc, info)
    register(tc, result, frame, info)
    score(settings.score_config(), None, now)
    listed = winback(settings.winback_config(), None)
    truth = continue_with_campaign(paths, cfg, listed["list_id"], activity_types=tuple(settings.activity_types))
    ingest_landing()
    out = campaign_outcomes(settings.outcomes_config(), [listed["list_id"]], log_runs=log_runs)
    if not out["lists"]:
        raise RuntimeError(f"the list's outcome was not measurable: {out['skipped']}")
    return {"outcome": out["lists"][0], "truth": truth}
