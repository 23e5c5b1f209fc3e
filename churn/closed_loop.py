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


def coverage(results: list[dict]) -> dict:
    """How often the list's intervals cover the simulator's true effect on the target group (and on the whole
    list), over closed loops."""
    def covers(o: dict, key: str, truth: float) -> bool:
        lo, hi = o[f"{key}_low"], o[f"{key}_high"]
        return lo is not None and lo <= truth <= hi

    out = {"loops": len(results)}
    for key in ("retention_difference", "spend_difference"):
        out[key] = {"covers_target_truth": sum(covers(r["outcome"]["overall"], key, r["truth"]["target"][key])
                                               for r in results),
                    "covers_whole_list_truth": sum(covers(r["outcome"]["overall"], key, r["truth"]["whole_list"][key])
                                                   for r in results)}
    return out


def seed_runs(work: Path, seeds: int, run):
    """The measurement scripts' loop (campaign-coverage, clean-labels): quiet logs, then for seeds 1..N a fresh
    data folder `work/seed-N` and `run(home, seed)`, its result dict given its wall time as "seconds"; yields
    (seed, result)."""
    import os
    import shutil
    import sys
    import time

    from churn.cli import QUIET_ENV

    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for seed in range(1, seeds + 1):
        home = work / f"seed-{seed}"
        shutil.rmtree(home, ignore_errors=True)
        t0 = time.monotonic()
        result = run(home, seed)
        result["seconds"] = time.monotonic() - t0
        yield seed, result


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import time

    p = argparse.ArgumentParser(prog="campaign-coverage", description="Run the closed campaign loop for several "
                                "seeds and count how often the outcome's 95 % interval covers the true effect.")
    p.add_argument("--seeds", type=int, default=20, help="how many seeds (1..N; default 20)")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--days", type=int, default=540)
    p.add_argument("--control-share", type=float, default=0.3)
    p.add_argument("--work", type=Path, default=Path("campaign-coverage-data"), help="data folders (one per seed; "
                   "replaced)")
    p.add_argument("--out", type=Path, help="write every loop's outcome and truth here as JSON")
    args = p.parse_args(argv)
    results, started = [], time.monotonic()
    print(f"{'seed':>4} {'target':>6} {'control':>7} {'retention diff [95 % CI]':>28} {'truth':>7} {'ok':>3} "
          f"{'spend diff [95 % CI]':>26} {'truth':>7} {'ok':>3} {'s':>5}")
    for seed, r in seed_runs(args.work, args.seeds, lambda home, seed: closed_loop(
            home, args.customers, args.days, seed, control_share=args.control_share)):
        results.append(r)
        o, t = r["outcome"]["overall"], r["truth"]["target"]
        ok = {k: o[f"{k}_low"] <= t[k] <= o[f"{k}_high"] for k in ("retention_difference", "spend_difference")}
        print(f"{seed:>4} {o['target']:>6} {o['control']:>7} "
              f"{o['retention_difference']:+7.1%} [{o['retention_difference_low']:+6.1%}, "
              f"{o['retention_difference_high']:+6.1%}] {t['retention_difference']:+7.1%} "
              f"{'yes' if ok['retention_difference'] else 'NO':>3} "
              f"{o['spend_difference']:+6.2f} [{o['spend_difference_low']:+6.2f}, {o['spend_difference_high']:+6.2f}] "
              f"{t['spend_difference']:+7.2f} {'yes' if ok['spend_difference'] else 'NO':>3} {r['seconds']:5.0f}",
              flush=True)
    summary = {**coverage(results), "seconds": time.monotonic() - started, "customers": args.customers,
               "days": args.days, "control_share": args.control_share}
    rd, sd = summary["retention_difference"], summary["spend_difference"]
    print(f"95 % intervals covering the true effect on the target group: retention difference "
          f"{rd['covers_target_truth']}/{len(results)}, spend difference {sd['covers_target_truth']}/{len(results)} "
          f"(whole-list truth: {rd['covers_whole_list_truth']}/{len(results)} and "
          f"{sd['covers_whole_list_truth']}/{len(results)}); {summary['seconds']:.0f} s in all")
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "loops": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
