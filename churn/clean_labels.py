"""Clean labels, measured (issue #15, part 5): a model trained keeping the snapshot rows of customers contacted in
their label window against one trained without them, on the same validation snapshot of uncontacted behaviour.

Generated data (no campaign in the events), then at every training cutoff a win-back list (the customers most
overdue among those who bought in the last 180 days) with a hold-out; its target group is contacted the day after
the cutoff and their labels become what the contact made them, by the simulator's campaign model
(`simulator/campaign.py`: each customer's hidden response, treated state chain and exact P(retained) with and
without the contact). Every label whose window holds the contact (the list's own cutoff's, and earlier cutoffs'
within a horizon) is changed as little as possible for its P(retained) to become the treated one (untreated before
the contact day, treated from it): a churned customer helped by the contact is retained with probability
(p1 - p0) / (1 - p0), a retained one pushed out churns with probability (p0 - p1) / p0. Only labels move: the
contact does not reach the features of later cutoffs (a limit of this measurement, see README). The contacts are
flagged by the pipeline's own function and the two settings split by `split_by_plan`; the validation snapshot has
no contacts. Calls the pipeline's functions directly (no Prefect, no MLflow).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("churn.clean_labels")

METRICS = ("roc_auc", "pr_auc", "brier", "calibration_error")
LIST_SHARE = 0.2  # of each training snapshot's customers
MAX_INACTIVE_DAYS = 180  # the win-back list's rule (winback_max_inactive_days)


def campaigns(cfg, params: pd.DataFrame, frame: pd.DataFrame, cutoffs: list[pd.Timestamp], horizon_days: int,
              control_share: float, seed: int) -> tuple[pd.Series, pd.DataFrame]:
    """A simulated campaign at each training cutoff (oldest first): the snapshot labels after them (index as
    `frame`) and the contacts of their target groups (customer_id, contacted_at). A customer is listed at most once
    (a cooldown as long as the measurement), so each has at most one contact; it changes the label of every
    snapshot whose window holds it, from the contact day on."""
    from simulator.campaign import Campaign, expected_outcome, responses, treated_chain

    labels, contacts, listed_before = frame["churned"].copy(), [], set()
    by_id = params.set_index("customer_id")
    for cutoff in cutoffs:
        rng = np.random.default_rng([seed, int(cutoff.value // 10**9)])
        snapshot = frame[frame["cutoff"] == cutoff]
        eligible = snapshot[(snapshot["days_since_last_purchase"] <= MAX_INACTIVE_DAYS)
                            & ~snapshot["customer_id"].isin(listed_before)]
        listed = eligible.sort_values(["overdue_ratio", "customer_id"], ascending=[False, True])
        listed = listed.head(int(LIST_SHARE * len(snapshot)))
        listed_before |= set(listed["customer_id"])
        target = listed[rng.random(len(listed)) >= control_share]["customer_id"]
        contact_day = Campaign(as_of=cutoff, horizon_days=horizon_days, seed=seed).start_day(cfg)
        p = by_id.loc[target].reset_index()
        treated = treated_chain(p, contact_day, responses(p["customer_id"], seed), rng).set_index("customer_id")
        contacted_at = cutoff.normalize() + pd.Timedelta(days=1, hours=10)
        contacts.append(pd.DataFrame({"customer_id": target.to_numpy(), "contacted_at": contacted_at}))
        # every snapshot whose label window holds the contact: its own and the earlier ones within a horizon
        for c in cutoffs:
            if not (c < contacted_at <= c + pd.Timedelta(days=horizon_days)):
                continue
            rows = frame[(frame["cutoff"] == c) & frame["customer_id"].isin(target)]
            q = by_id.loc[rows["customer_id"]].reset_index()
            t = treated.loc[rows["customer_id"]]
            window = Campaign(as_of=c, horizon_days=horizon_days, seed=seed)
            first, last = window.start_day(cfg), window.start_day(cfg) + horizon_days
            share = window.last_day_share()

            def total(chain: pd.DataFrame, a: int, b: int, last_share: float) -> np.ndarray:
                """Expected activity (purchases) on days a..b (the last one counted for last_share)."""
                if b < a:
                    return np.zeros(len(chain))
                p_any = expected_outcome(cfg, chain, a, b - a + 1, last_share, ("purchase",))["p_retained"]
                return -np.log1p(-np.minimum(p_any.to_numpy(), 1 - 1e-12))

            treated_q = q.assign(decline_start_day=t["decline_start_day"].to_numpy(),
                                 churn_day=t["churn_day"].to_numpy())
            before = total(q, first, contact_day - 1, 1.0)
            p0 = -np.expm1(-(before + total(q, contact_day, last, share)))
            p1 = -np.expm1(-(before + total(treated_q, contact_day, last, share)))
            churned = rows["churned"].to_numpy().astype(bool)
            u = rng.random(len(rows))
            with np.errstate(invalid="ignore", divide="ignore"):
                won_back = churned & (p1 > p0) & (u < (p1 - p0) / (1 - p0))
                pushed_out = ~churned & (p1 < p0) & (u < (p0 - p1) / p0)
            labels.loc[rows.index] = np.where(won_back, 0, np.where(pushed_out, 1, churned.astype(int)))
    return labels, pd.concat(contacts, ignore_index=True)


def measure(home: Path, customers: int = 5000, days: int = 720, seed: int = 1, horizon_days: int = 90,
            n_train_cutoffs: int = 4, control_share: float = 0.3, resamples: int = 1000) -> dict:
    """One seed: generate, ingest, build the snapshots, run a campaign at every training cutoff, train keeping and
    excluding the contacted rows; returns both models' validation metrics and the paired intervals
    (exclude minus keep)."""
    from churn.settings import defaults
    from features.season import model_features
    from features.snapshots import CONTACTED, contacted_in_label_window, split_by_plan, stacked_snapshots
    from flows.ingest import ingest_file
    from models.bootstrap import paired_difference
    from models.evaluate import metrics
    from models.snapshots import plan_cutoffs
    from models.train import train_and_evaluate
    from simulator.generate import SimulationConfig, customer_parameters
    from storage import layout, sources, store

    paths = layout.Paths(home)
    settings = defaults(home, horizon_days=horizon_days, n_train_cutoffs=n_train_cutoffs, seed=seed)
    cfg = SimulationConfig(customers=customers, days=days, seed=seed, chunk_customers=customers)
    from churn.generate import generate

    generate(paths, cfg)
    now = pd.Timestamp.now(tz="UTC")
    for f in sources.landing_files(paths):
        ingest_file(settings.ingest_config(settle_seconds=0.0), f, now=now)
    tc = settings.train_config()
    first, last, _ = store.store_time_range(paths)
    plan = plan_cutoffs(first, last, horizon_days, n_train_cutoffs, tc.cutoff_step_days, tc.min_history_days)
    con = store.connect(paths)
    try:
        frame = stacked_snapshots(store.events_relation(con, paths), [*plan.train, plan.validation], horizon_days,
                                  tc.lookback_days, tc.activity_types)
    finally:
        con.close()
    params = customer_parameters(cfg, 0, 0, customers)
    untouched = frame["churned"].copy()
    labels, contacts = campaigns(cfg, params, frame, list(plan.train), horizon_days, control_share, seed)
    frame["churned"] = labels.to_numpy()
    frame[CONTACTED] = contacted_in_label_window(frame, contacts, horizon_days).to_numpy()
    flagged = frame[CONTACTED]
    out = {"seed": seed, "customers": customers, "days": days, "train_cutoffs": [c.date().isoformat() for c in plan.train],
           "validation_cutoff": plan.validation.date().isoformat(), "contacted_rows": int(flagged.sum()),
           "train_rows": int((frame["cutoff"] != plan.validation).sum()),
           "labels_changed": int((frame["churned"] != untouched).sum()),
           "contacted_churn_rate_untreated": float(untouched[flagged].mean()),
           "contacted_churn_rate_treated": float(frame.loc[flagged, "churned"].mean())}
    preds = {}
    for setting in ("keep", "exclude"):
        split = split_by_plan(frame, plan, setting)
        result = train_and_evaluate(split[split["split"] == "train"], split[split["split"] == "validation"],
                                    model_features(tc.features, plan.train), seed=seed, model_params=tc.model_params,
                                    horizon_days=horizon_days, btyd=False, bootstrap=None)
        preds[setting] = result.predictions
        out[setting] = {m: result.metrics[m] for m in METRICS}
        out[setting]["trees"] = result.model.best_iteration_ + 1
    y = preds["keep"]["y"].to_numpy()
    assert (preds["exclude"]["customer_id"].to_numpy() == preds["keep"]["customer_id"].to_numpy()).all()
    out["validation_rows"] = len(y)
    out["exclude_minus_keep"] = {m: i.as_dict() for m, i in paired_difference(
        y, preds["exclude"]["model"].to_numpy(), preds["keep"]["model"].to_numpy(), metrics=METRICS,
        n_resamples=resamples, confidence=0.95, seed=seed).items()}
    out["check"] = {m: metrics(y, preds["keep"]["model"].to_numpy())[m] for m in METRICS}
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import time

    from churn.closed_loop import seed_runs

    p = argparse.ArgumentParser(prog="clean-labels", description="Train keeping and excluding the snapshot rows "
                                "contacted in their label window, on generated data with simulated campaigns at "
                                "every training cutoff; compare on the same uncontacted validation snapshot.")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds (1..N; default 3)")
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--days", type=int, default=720)
    p.add_argument("--control-share", type=float, default=0.3)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--work", type=Path, default=Path("clean-labels-data"), help="data folders (one per seed; replaced)")
    p.add_argument("--out", type=Path, help="write every seed's result here as JSON")
    args = p.parse_args(argv)
    results, started = [], time.monotonic()
    print(f"{'seed':>4} {'flagged':>7} {'changed':>7} {'metric':>17} {'keep':>7} {'exclude':>7} "
          f"{'exclude - keep [95 % CI]':>30}")
    for seed, r in seed_runs(args.work, args.seeds, lambda home, seed: measure(
            home, args.customers, args.days, seed, control_share=args.control_share, resamples=args.resamples)):
        results.append(r)
        for m in METRICS:
            d = r["exclude_minus_keep"][m]
            print(f"{seed:>4} {r['contacted_rows']:>7} {r['labels_changed']:>7} {m:>17} {r['keep'][m]:7.4f} "
                  f"{r['exclude'][m]:7.4f} {d['diff']:+9.4f} [{d['low']:+.4f}, {d['high']:+.4f}]", flush=True)
    print(f"{time.monotonic() - started:.0f} s in all")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
