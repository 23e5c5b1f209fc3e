"""`churn bench`: how the pipeline's cost grows with its data, measured stage by stage.

Each stage runs in its own child process (`python -m churn.bench STAGE JSON`), so its peak memory
(RSS, from wait4) and wall time are its own. Data sets are generated once per size and cached under
the bench folder. Stages call the same functions the flows call, without Prefect's per-process
start-up (which is constant, not data-dependent).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

log = logging.getLogger("churn.bench")

EVENTS_PER_CUSTOMER = 62  # what the simulator produces on average over 730 days
PANDAS_MAX_EVENTS = 20_000_000  # the pandas reference is measured only where it fits comfortably
INCREMENT_EVENTS = 1_000_000


def parse_size(text: str) -> int:
    t = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(t[-1], 1)
    return int(float(t[:-1] if t[-1] in "KMG" else t) * mult)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n:,}"


# ------------------------------------------------------------------ stages (run in a child process)

def _paths(p: dict):
    from storage import layout

    return layout.Paths(Path(p["home"]))


def _settings(p: dict):
    """The built-in defaults for this bench home and tracking store (the bench measures the defaults)."""
    from churn.settings import defaults

    return defaults(p["home"], mlflow_tracking_uri=p.get("tracking_uri"), experiment_name="churn-bench",
                    engine=p.get("engine", "duckdb"))


def stage_generate(p: dict) -> dict:
    from churn.generate import generate
    from simulator.generate import SimulationConfig

    s = _settings(p)
    out = generate(_paths(p), SimulationConfig(customers=p["customers"], days=s.generate_days, seed=p["seed"],
                                               chunk_customers=p.get("chunk", 10_000)))
    return {"events": out["events"], "customers": out["customers"]}


def stage_ingest(p: dict) -> dict:
    from flows.ingest import ingest_file
    from storage import sources

    paths, config = _paths(p), _settings(p).ingest_config()
    files = [Path(f) for f in p["files"]] if p.get("files") else sources.landing_files(paths)
    now = pd.Timestamp.now(tz="UTC")
    totals = {"rows_in": 0, "stored": 0, "quarantined": 0, "duplicates": 0}
    batches = []
    for f in files:
        r = ingest_file(config, f, now=now, force=p.get("force", False))
        batches.append(r.get("batch_id"))
        for k in totals:
            totals[k] += r[k]
    return {"events": totals["rows_in"], **totals, "_batches": batches}


def stage_features(p: dict) -> dict:
    from features.customer import customer_features
    from storage import engine, store

    paths, settings = _paths(p), _settings(p)
    _, last, n = store.store_time_range(paths)
    with engine.events_on(settings.engine, paths, settings.spark_master) as events:
        feats = customer_features(events, last, settings.lookback_days)
    return {"events": n, "customers": len(feats)}


def stage_features_pandas(p: dict) -> dict:
    from features.reference import customer_features_pandas
    from storage import store

    paths = _paths(p)
    events = store.read_events(paths)
    feats = customer_features_pandas(events, events["event_time"].max(), _settings(p).lookback_days)
    return {"events": len(events), "customers": len(feats)}


def stage_train(p: dict) -> dict:
    from flows.train import build_snapshots, register, train

    config = _settings(p).train_config()
    _, info = build_snapshots(config, None)
    result, frame = train(config, info)
    out = register(config, result, frame, info)
    return {"events": info["n_events"], "customers": result.sizes["validation_rows"],
            "train_rows": result.sizes["train_rows"], "snapshot_rows": len(frame), "roc_auc": out["metrics"]["roc_auc"]}


def synthetic_purchase_history(customers: int, seed: int) -> pd.DataFrame:
    """BTYD inputs for `customers` buyers (Poisson purchases until an exponential drop-out, ages up to two years)."""
    import numpy as np

    from features.purchase_history import AGE, FREQUENCY, RECENCY

    rng = np.random.default_rng(seed)
    age = rng.uniform(1, 730, customers).round()
    alive = np.minimum(rng.exponential(300, customers), age)
    freq = rng.poisson(rng.gamma(1.5, 0.03, customers) * alive).astype(float)
    # last purchase: the largest of `freq` uniform times in the alive span
    span = np.where(freq > 0, alive * rng.beta(np.maximum(freq, 1), 1), 0.0).round()
    return pd.DataFrame({FREQUENCY: freq, RECENCY: np.minimum(span, age), AGE: age})


def stage_btyd_fit(p: dict) -> dict:
    """Fit BG/NBD and Pareto/NBD (MAP) as training does (on a sample of `btyd_sample_customers` buyers, or on
    `sample_customers` if given; 0 = all) to synthetic histories of `customers` buyers, and predict all of them."""
    from models.btyd import BGNBD, ParetoNBD

    s = _settings(p)
    X = synthetic_purchase_history(p["customers"], p.get("seed", 42))
    X.index = X.index.astype(str)  # customer ids
    sample = p.get("sample_customers", s.btyd_sample_customers) or None
    out = {"customers": len(X), "fit_sample": min(sample or len(X), len(X))}
    for name, cls in (("bg_nbd", BGNBD), ("pareto_nbd", ParetoNBD)):
        t0 = time.perf_counter()
        m = cls(s.horizon_days, 1.0, sample_customers=sample, seed=s.seed).fit(X)
        t1 = time.perf_counter()
        m.churn_probability(X)
        out[f"{name}_fit_s"] = round(t1 - t0, 2)
        out[f"{name}_predict_s"] = round(time.perf_counter() - t1, 2)
    return out


def stage_score(p: dict) -> dict:
    from flows.score import score

    config = _settings(p).score_config(exact_reasons_top_n=p["exact"], reasons=p["reasons"])
    r = score(config, None, now=pd.Timestamp.now(tz="UTC"))
    return {"customers": r["customers"], "exact_reasons": r["exact_reasons"]}


def stage_winback(p: dict) -> dict:
    from flows.winback import winback

    r = winback(_settings(p).winback_config(), None)
    return {"customers": r["customers"]}


def stage_increment(p: dict) -> dict:
    """Ingest a prepared 1M-event batch, then remove it again so the cached store holds what it held (the table is
    restored to its version before the batch, and the batch's files deleted)."""
    from storage import sources, store

    paths = _paths(p)
    before = store.store_version(paths)
    r = stage_ingest({**p, "files": [p["batch"]], "force": True})
    (batch_id,) = r.pop("_batches")
    if before is None:  # the store was empty: no table again
        shutil.rmtree(paths.events)
    else:
        store.event_table(paths).restore(before)
    for f in [*paths.events.glob(f"event_month=*/{batch_id}.parquet"), paths.quarantine / f"{batch_id}.parquet"]:
        f.unlink(missing_ok=True)
    (paths.ledger / f"{sources.file_sha256(Path(p['batch']))}.json").unlink(missing_ok=True)
    return r


STAGES = {"generate": stage_generate, "ingest": stage_ingest, "features": stage_features,
          "features_pandas": stage_features_pandas, "train": stage_train, "btyd_fit": stage_btyd_fit,
          "score": stage_score,
          "winback": stage_winback, "increment": stage_increment}


# ------------------------------------------------------------------ the harness (parent process)

def _measure(stage: str, params: dict, isolate: bool = True) -> dict:
    """Run one stage in a child process: wall time, peak RSS of that child, and what it reports.

    `isolate=False` runs it in this process (for smoke tests: RSS is then this process's peak so far)."""
    if not isolate:
        result = _run(stage, params)
        result.pop("_batches", None)
        return {"stage": stage, "wall_s": result.pop("_work_s"), "peak_rss_mb": result.pop("_peak_rss_mb"), **result}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "churn.bench", stage, json.dumps(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"bench stage {stage} failed:\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.pop("_batches", None)
    return {"stage": stage, "wall_s": result.pop("_work_s"), "peak_rss_mb": result.pop("_peak_rss_mb"),
            "process_s": round(wall, 2), **result}


def _increment_batch(root: Path, end: pd.Timestamp, n_events: int) -> tuple[Path, str]:
    """A batch of new events over the store's last 30 days (ids that are not stored yet)."""
    import pyarrow as pa

    from expectations.contract import EVENT_SCHEMA
    from simulator.generate import SimulationConfig, simulate
    from storage import atomic
    from storage.sources import DONE_SUFFIX

    path = root / f"increment-{label(n_events)}-{end.date()}.parquet"
    marker = path.stem.split("-", 1)[0]
    done = path.with_name(path.name + DONE_SUFFIX)  # the producer protocol: complete, no settle time
    if path.exists():
        done.touch()
        return path, marker
    cfg = SimulationConfig(customers=n_events // EVENTS_PER_CUSTOMER * 2 + 10, days=730, seed=999,
                           chunk_customers=20_000)
    frames = [ev for ev, _ in simulate(cfg)]
    ev = pd.concat(frames, ignore_index=True).head(n_events)
    span = (ev["event_time"] - cfg.start_ts) / (pd.Timedelta(days=730))
    ev["event_time"] = (end - pd.Timedelta(days=30) + span * pd.Timedelta(days=30)).astype("datetime64[us, UTC]")
    ev["event_id"] = "inc-" + ev["event_id"]
    atomic.write_parquet_atomic(pa.Table.from_pandas(ev, schema=EVENT_SCHEMA, preserve_index=False), path)
    done.touch()
    return path, marker


def bench(sizes: list[int], root: Path, out_md: Path, out_json: Path, exact_top_n: int | None = None,
          increment_events: int = INCREMENT_EVENTS, isolate: bool = True, commands: bool = True,
          engines: tuple[str, ...] = ()) -> list[dict]:
    """Measure every stage at every size; write the Markdown table and the JSON after each stage (a failing
    stage loses nothing measured before it). `commands`: also time one-shot CLI commands end to end. `engines`:
    other engines ("spark") whose feature build, training and scoring are measured beside DuckDB's, on the same
    store."""
    def measure(stage: str, params: dict) -> dict:
        return _measure(stage, params, isolate)

    if exact_top_n is None:
        from churn.settings import Settings

        exact_top_n = Settings.model_fields["exact_reasons_top_n"].default

    root.mkdir(parents=True, exist_ok=True)
    measured = {label(n) for n in sizes}
    # keep earlier results of sizes not measured in this run (e.g. `--sizes 100M` after `--sizes 1M,10M`)
    earlier: list[dict] = json.loads(out_json.read_text()) if out_json.exists() else []
    rows: list[dict] = [r for r in earlier if r.get("size") not in measured]
    for n in sizes:
        home = root / f"events={label(n)}"
        customers = max(1000, n // EVENTS_PER_CUSTOMER)
        uri = f"sqlite:///{home / 'mlflow' / f'bench-{time.time_ns()}.db'}"  # a fresh tracking store per run
        base = {"home": str(home), "tracking_uri": uri}
        stamp = home / ".complete"
        size_rows = []

        def add(r: dict, stage: str | None = None) -> None:
            """Keep a stage's row and rewrite the results at once: a later failure loses nothing measured."""
            if stage:
                r["stage"] = stage
            size_rows.append(r)
            log.info("bench %s: %s %s", label(n), r["stage"], f"{r['wall_s']} s" if "wall_s" in r else r.get("note", ""))
            _write(rows + [{**x, "size": label(n)} for x in size_rows], out_md, out_json)

        if not stamp.exists():
            shutil.rmtree(home, ignore_errors=True)
            add(measure("generate", {**base, "customers": customers, "seed": 42}))
            add(measure("ingest", base))
            stamp.write_text("ok")
        else:  # the store is cached: keep the figures measured when it was built
            for stage in ("generate", "ingest"):
                before = [r for r in earlier if r.get("size") == label(n) and r.get("stage") == stage]
                add({**before[-1], "note": "store cached; measured when it was built"} if before
                    else {"stage": stage, "note": "store cached; not measured"})
        shutil.rmtree(home / "mlflow", ignore_errors=True)
        add(measure("features", base))
        if n <= PANDAS_MAX_EVENTS:
            add(measure("features_pandas", base))
        add(measure("train", base))
        for other in engines:
            add(measure("features", {**base, "engine": other}), f"features [{other}]")
            add(measure("train", {**base, "engine": other}), f"train [{other}]")
        add(measure("btyd_fit", {**base, "customers": customers}))
        add(measure("score", {**base, "exact": exact_top_n, "reasons": True}),
            f"score (exact reasons for top {exact_top_n:,})")
        add(measure("score", {**base, "exact": 0, "reasons": False}), "score (no reasons)")
        for other in engines:
            add(measure("score", {**base, "exact": exact_top_n, "reasons": True, "engine": other}),
                f"score [{other}] (exact reasons for top {exact_top_n:,})")
        add(measure("winback", base))
        add(_end_to_end(size_rows, exact_top_n))
        for command, what in (("scores", "a look-up"), ("winback", "one-shot, without a Prefect server")):
            if commands:
                add(_command_startup(home, uri, command), f"command: churn {command} ({what})")
        from storage import layout, store

        _, end, _ = store.store_time_range(layout.Paths(home))
        batch, marker = _increment_batch(root, end, increment_events)
        empty = root / "empty-store"
        shutil.rmtree(empty, ignore_errors=True)
        add(measure("increment", {"home": str(empty), "batch": str(batch), "marker": marker}),
            f"ingest {label(increment_events)} batch into an empty store")
        add(measure("increment", {**base, "batch": str(batch), "marker": marker}),
            f"ingest {label(increment_events)} batch into the {label(n)}-event store")
        for r in size_rows:
            r["size"] = label(n)
            rows.append(r)
        _write(rows, out_md, out_json)
    return rows


def _command_startup(home: Path, tracking_uri: str, command: str) -> dict:
    """A one-shot command as a user runs it (a fresh interpreter, the CLI's own checks and start-up): wall time
    from start to exit, on the store just measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHURN_"))}
    env.update(CHURN_EMBEDDED="1", CHURN_MLFLOW_TRACKING_URI=tracking_uri, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "churn.cli", "--home", str(home), "--quiet", command],
                          capture_output=True, text=True, env=env)
    wall = round(time.perf_counter() - t0, 2)
    if proc.returncode != 0:
        return {"stage": command, "note": f"failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"}
    return {"stage": command, "wall_s": wall, "note": "whole process: interpreter, imports, checks and work"}


def _end_to_end(size_rows: list[dict], exact_top_n: int) -> dict:
    """The whole pipeline at this size: the sum of its stages, each measured in its own process."""
    names = ["generate", "ingest", "train", f"score (exact reasons for top {exact_top_n:,})", "winback"]
    by = {r["stage"]: r for r in size_rows}
    parts = [by[n] for n in names if "wall_s" in by.get(n, {})]
    row = {"stage": "end to end (generate + ingest + train + score with reasons + winback)",
           "wall_s": round(sum(r["wall_s"] for r in parts), 3),
           "peak_rss_mb": max(r["peak_rss_mb"] for r in parts), "events": by["ingest"].get("events", 0)}
    if len(parts) < len(names):
        row["note"] = "incomplete: " + ", ".join(n for n in names if n not in {r["stage"] for r in parts})
    return row


def _rate(r: dict) -> str:
    if "wall_s" not in r:
        return ""
    if "events" in r and (r["stage"] in ("generate", "ingest", "features", "features_pandas")
                          or r["stage"].startswith("features [")
                          or "batch" in r["stage"] or r["stage"].startswith("end to end")):
        return f"{r.get('events', 0) / r['wall_s']:,.0f} events/s"
    if "customers" in r:
        return f"{r['customers'] / r['wall_s']:,.0f} customers/s"
    return ""


# a section measured by hand (e.g. where the train stage's time goes) starts with this line; `churn bench` keeps it,
# and everything after it, when it rewrites the file
KEPT_SECTION = "<!-- measured by hand: churn bench keeps this section and everything after it -->"


def _write(rows: list[dict], out_md: Path, out_json: Path) -> None:
    machine = f"{os.cpu_count()} cores, {platform.python_version()}, {platform.machine()}"
    lines = ["# Benchmarks", "", f"Measured by `churn bench` on {machine} "
             f"({time.strftime('%Y-%m-%d')}). Each stage ran in its own process; peak RSS is that process's. "
             "Wall time is the stage's work after the libraries were imported; process_s adds the "
             "interpreter and import start-up (about 8 s, constant).",
             "", "| size | stage | wall (s) | throughput | peak RSS (MB) | details |", "|---|---|---|---|---|---|"]
    for r in rows:
        details = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in r.items()
                            if k not in ("stage", "size", "wall_s", "peak_rss_mb"))
        lines.append(f"| {r['size']} | {r['stage']} | {r.get('wall_s', '')} | {_rate(r)} | "
                     f"{r.get('peak_rss_mb', '')} | {details} |")
    ratios = []
    for size in dict.fromkeys(r["size"] for r in rows):
        by = {r["stage"]: r for r in rows if r["size"] == size}
        if "features" in by and "features_pandas" in by:
            ratios.append(f"- {size}: DuckDB feature build {by['features']['wall_s']} s vs pandas reference "
                          f"{by['features_pandas']['wall_s']} s: **{by['features_pandas']['wall_s'] / by['features']['wall_s']:.1f}x** faster")
        for stage, r in by.items():  # "train [spark]" beside "train", "score [spark] (...)" beside "score (...)"
            engine = re.search(r" \[(\w+)\]", stage)
            here = by.get(stage.replace(engine.group(0), "")) if engine else None
            if here and "wall_s" in r and "wall_s" in here:
                ratios.append(f"- {size}: {stage.replace(engine.group(0), '')} on {engine.group(1)} {r['wall_s']} s vs "
                              f"DuckDB and this process {here['wall_s']} s: **{r['wall_s'] / here['wall_s']:.1f}x** the time")
        inc = [r for r in rows if r["size"] == size and "batch" in r["stage"]]
        if len(inc) == 2:
            ratios.append(f"- {size}: the same batch into the full store vs an empty one: "
                          f"**{inc[1]['wall_s'] / inc[0]['wall_s']:.2f}x** the time")
    lines += ["", "Side by side, same run:", "", *ratios, ""]
    old = out_md.read_text() if out_md.exists() else ""
    kept = old[old.index(KEPT_SECTION):] if KEPT_SECTION in old else ""
    out_md.write_text("\n".join(lines) + "\n" + (f"\n{kept}" if kept else ""))
    out_json.write_text(json.dumps(rows, indent=2) + "\n")


def _run(stage: str, params: dict) -> dict:
    import resource

    spark = params.get("engine") == "spark"
    if spark:  # the session's start is not the stage's work (a child's process_s has it)
        from storage import engine

        engine.spark_session(_settings(params).spark_master)
    t0 = time.perf_counter()
    result = STAGES[stage](params)
    result["_work_s"] = round(time.perf_counter() - t0, 3)
    if spark:  # the peak RSS below is this Python process's only: the JVM (driver, local executors) is another
        result["rss"] = "Python only, not the JVM"
    result["_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _child(stage: str, params: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    # import the heavy libraries first: their start-up is constant, not part of the stage's work
    import duckdb  # noqa: F401

    from ingestion.validate import import_great_expectations

    import_great_expectations()
    import mlflow  # noqa: F401
    import xgboost  # noqa: F401

    if stage in ("train", "btyd_fit"):
        import pymc_marketing.clv  # noqa: F401
    print(json.dumps(_run(stage, json.loads(params)), default=str))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
