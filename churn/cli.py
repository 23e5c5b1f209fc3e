"""The `churn` command. Heavy libraries are imported inside each command, so `--help` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from churn.errors import UserError

QUIET_ENV = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run ... at" lines would break --json output
}


class CommandError(UserError):
    """A command's input is missing or wrong (checked before anything runs)."""


class ProgressFormatter(logging.Formatter):
    """Progress lines (INFO) as `[  12.3 s] message`, seconds since the command started; warnings and errors
    keep their level and source (`WARNING churn.score: ...`)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO:
            return f"[{record.relativeCreated / 1000:6.1f} s] {record.getMessage()}"
        return f"{record.levelname} {record.name}: {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else "")


def configure_environment(home: Path, quiet: bool = False) -> None:
    """Offline, quiet, and all state under the data folder (unless the user already chose otherwise); progress
    lines on stderr (never on stdout, which `--json` keeps for JSON), warnings only with `--quiet`.

    Creates nothing: `prepare_state` makes Prefect's folder once the command's inputs have been checked."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ProgressFormatter())
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler])
    for noisy in ("alembic", "mlflow", "great_expectations", "httpx", "prefect", "urllib3", "XGBoost-PySpark", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def prepare_state(home: Path, allow_outside: bool = False) -> None:
    from storage.layout import entries_inside

    entries_inside(home, allow_outside)
    folder = Path(os.environ.get("PREFECT_HOME", home / "prefect"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a data folder under a file, in /proc, or without write access: nothing was written
        raise CommandError(f"cannot create the data folder's {folder}: {e.strerror or e}") from None


# ------------------------------------------------------------------ checks made before anything is written or
# Prefect starts (8-15 s): each raises a UserError that `main` prints as one `error:` line

def check_ingest(args, settings) -> None:
    from ingestion.normalize import Mapping, MappingError
    from storage import layout, sources

    if args.mapping:
        try:
            Mapping.from_file(Path(args.mapping))
        except (OSError, MappingError) as e:
            raise CommandError(f"mapping {args.mapping}: {e.strerror if isinstance(e, OSError) else e}") from e
    folders = [p for p in args.paths if Path(p).is_dir()]
    if folders:
        raise CommandError(f"{', '.join(folders)}: a folder, not a file; name the files in it (e.g. "
                           f"{folders[0].rstrip('/')}/*.csv), or put them in {layout.Paths(settings.home).landing} "
                           f"and run `churn ingest` without paths")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise CommandError(f"no such file: {', '.join(missing)}")
    special = [p for p in args.paths if not Path(p).is_file()]
    if special:  # a FIFO, a device such as /dev/null, a socket: nothing a delivery is
        raise CommandError(f"not a regular file: {', '.join(special)}; name the data files to ingest")
    unsupported = [p for p in args.paths if not sources.is_source_name(p)]
    if unsupported:
        raise CommandError(f"unsupported file type: {', '.join(unsupported)}; ingest reads "
                           f"{', '.join(sources.SOURCE_SUFFIXES)} files, optionally gzip-compressed (.gz)")
    landing = layout.Paths(settings.home).landing
    if not args.paths and not sources.landing_files(layout.Paths(settings.home)):
        raise CommandError(f"nothing to ingest: no files given and no {'/'.join(sources.SOURCE_SUFFIXES)} files in "
                           f"{landing}{'' if landing.is_dir() else ' (the folder does not exist)'}: name files, or "
                           f"run `churn generate`")


def check_contacts_ingest(args, settings) -> None:
    """The named contact files exist and are of a type ingest reads; a sweep has files to read."""
    from storage import layout, sources

    folders = [p for p in args.paths if Path(p).is_dir()]
    if folders:
        raise CommandError(f"{', '.join(folders)}: a folder, not a file; name the contact files in it, or put them "
                           f"in {layout.Paths(settings.home).landing_contacts} and run `churn contacts ingest`")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise CommandError(f"no such file: {', '.join(missing)}")
    special = [p for p in args.paths if not Path(p).is_file()]
    if special:
        raise CommandError(f"not a regular file: {', '.join(special)}; name the contact files to ingest")
    unsupported = [p for p in args.paths if not sources.is_source_name(p)]
    if unsupported:
        raise CommandError(f"unsupported file type: {', '.join(unsupported)}; contacts ingest reads "
                           f"{', '.join(sources.SOURCE_SUFFIXES)} files, optionally gzip-compressed (.gz)")
    paths = layout.Paths(settings.home)
    if not args.paths and not sources.landing_scan(paths, paths.landing_contacts).files:
        raise CommandError(f"nothing to ingest: no files given and no contact files in {paths.landing_contacts}"
                           f"{'' if paths.landing_contacts.is_dir() else ' (the folder does not exist)'}")


def check_train(args, settings) -> None:
    """The cutoffs the train flow will plan (EmptyStore, NotEnoughHistory); without importing Prefect."""
    from churn.settings import utc
    from models.snapshots import plan_cutoffs
    from storage import layout, store

    config = _train_config(args, settings)
    from storage.engine import require_trainable

    require_trainable(config.engine, config.spark_master)
    first, last, _ = store.store_time_range(layout.Paths(settings.home))
    as_of = utc(args.as_of) if args.as_of else last
    store.require_not_after(first, last, as_of)
    plan_cutoffs(first, as_of, config.horizon_days, config.n_train_cutoffs, config.cutoff_step_days,
                 config.min_history_days)


def check_score(args, settings) -> None:
    from churn.settings import utc
    from storage import layout, tracking

    # the champion first: without a tracking store that answer needs no import (the store's needs pandas)
    tracking.require_champion(settings.tracking_uri, settings.model_name)
    from storage import store

    paths = layout.Paths(settings.home)
    store.require_events(paths)
    if args.as_of:
        store.require_covered(paths, utc(args.as_of))


def check_winback(args, settings) -> None:
    from churn.settings import pseudonym_key
    from storage import layout

    layout.require_scores(layout.Paths(settings.home), args.as_of)  # paths only: no pandas yet
    if args.pseudonymise:
        pseudonym_key()
    if args.contacts:
        from storage import catalog

        catalog.check_contacts(Path(args.contacts))


def check_outcomes(args, settings) -> None:
    from storage import catalog, layout, store

    paths = layout.Paths(settings.home)
    store.require_events(paths)
    for list_id in args.list or []:
        catalog.list_record(paths, list_id)


def check_serve(args, settings) -> None:
    from churn.serve import check_schedules

    check_schedules(settings)
    if not os.environ.get("PREFECT_API_URL"):
        raise CommandError("`churn serve` needs a Prefect server: start one with `churn services up`, or set "
                           "PREFECT_API_URL")


def check_bench(args, settings) -> None:
    from churn.bench import parse_size

    for text in [*args.sizes.split(","), args.increment]:
        try:
            if parse_size(text) < 1:
                raise ValueError
        except (ValueError, IndexError):
            raise CommandError(f"bench: {text!r} is not a size: give an event count such as 500K, 10M or "
                               f"1000000") from None
    from features.sql import DIALECTS  # the engines there are

    for e in args.engine.split(","):
        if e not in DIALECTS:
            raise CommandError(f"bench --engine {e!r}: unknown engine; allowed: {', '.join(DIALECTS)}")
    if "spark" in args.engine.split(","):
        from storage.engine import EngineUnavailable, spark_session

        try:
            spark_session(settings.spark_master).stop()  # fails in one line now, not after an hour of DuckDB stages
        except EngineUnavailable as e:
            raise CommandError(f"bench --engine spark: {e}") from None
    out, root = Path(args.out), Path(args.root)
    if out.is_dir():
        raise CommandError(f"bench --out {out}: a folder; name the Markdown file to write, e.g. {out / 'BENCHMARKS.md'}")
    if root.exists() and not root.is_dir():
        raise CommandError(f"bench --root {root}: a file; name a folder to keep the generated stores in")
    folder = Path(args.out).resolve().parent
    if not folder.is_dir():
        existing = next(p for p in folder.parents if p.is_dir())
        raise CommandError(f"bench --out {args.out}: the folder {folder} does not exist (the nearest existing one "
                           f"is {existing})")
    if not os.access(folder, os.W_OK):
        raise CommandError(f"bench --out {args.out}: the folder {folder} is not writable")


def _print(obj: dict, as_json: bool, human) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        human(obj)


def _print_ingest(s: dict) -> None:
    from ingestion.accounting import adds_up

    print(f"{'file':<48} {'status':<9} {'rows_in':>9} {'stored':>9} {'quarant.':>9} {'dupes':>9} {'identical':>9}")
    for f in s["files"]:
        print(f"{Path(f['file']).name[:48]:<48} {f['status']:<9} {f['rows_in']:>9} {f['stored']:>9} "
              f"{f['quarantined']:>9} {f['duplicates']:>9} {f.get('identical_rows', 0):>9}")
        if f.get("error"):
            print(f"    error: {f['error']}")
        if f["status"] == "waiting":
            print(f"    still being written, left for the next run: {f.get('note')}")
    print(f"{'TOTAL':<48} {'':<9} {s['rows_in']:>9} {s['stored']:>9} {s['quarantined']:>9} {s['duplicates']:>9} "
          f"{s['identical_rows']:>9}")
    print(f"rows in = stored + quarantined + duplicates + identical rows: {s['rows_in']} = {s['stored']} + "
          f"{s['quarantined']} + {s['duplicates']} + {s['identical_rows']} ({'ok' if adds_up(s) else 'MISMATCH'})")
    if s["identical_rows"]:
        print(f"NOTE: {s['identical_rows']} row(s) without an event_id were identical in every column to another "
              "row of their file and were stored as one event; give each row an event_id (or an order_id / line "
              "number) if they are separate events")
    for d in s.get("volume_drops", []):
        print(f"WARNING: volume drop on {d['date']}: {d['events']} events, typically {d['typical']:.0f} a day "
              f"(a broken feed? not scored as churn without a look)")
    if s["reasons"]:
        print("quarantine reasons (source rows):")
        for k, v in s["reasons"].items():
            print(f"  {v:>9}  {k}")


def cmd_generate(args, settings) -> int:
    from churn.generate import generate
    from simulator.generate import SimulationConfig
    from storage import layout

    cfg = SimulationConfig(customers=args.customers or settings.generate_customers,
                           days=args.days or settings.generate_days,
                           seed=settings.seed if args.seed is None else args.seed,
                           start=args.start or settings.generate_start)
    out = generate(layout.Paths(settings.home), cfg)
    _print(out, args.json, lambda o: print(
        f"generated {o['events']:,} events for {o['customers']:,} customers over {o['days']} days "
        f"from {o['start']} (seed {o['seed']}): {o['by_type']}\n"
        f"  {len(o['files'])} file(s) in {Path(o['files'][0]).parent if o['files'] else '-'}\n"
        f"  ground truth: {o['truth']}"))
    return 0


def cmd_ingest(args, settings) -> int:
    from flows.ingest import ingest_flow

    summary = ingest_flow(settings.ingest_config(), files=[str(Path(p).resolve()) for p in args.paths] or None,
                          fmt=args.format, mapping_path=str(Path(args.mapping).resolve()) if args.mapping else None,
                          timezone=args.timezone, force=args.force,
                          allow_outside_files=True)  # the user named these files
    _print(summary, args.json, _print_ingest)
    if not args.paths:  # a sweep: a file still arriving is left for the next sweep, which is no failure
        return 1 if summary["files_rejected"] else 0
    for f in summary["files"]:
        if f["status"] == "waiting":
            print(f"error: {f['file']} is still being written ({f.get('note')}); it was left in place: "
                  "run again once its writer has finished", file=sys.stderr)
    return 1 if summary["files_rejected"] or summary["files_waiting"] else 0


def cmd_contacts(args, settings) -> int:
    config = settings.ingest_config()
    files = [str(Path(p).resolve()) for p in args.paths] or None
    if os.environ.get("PREFECT_API_URL"):  # a server is running: the run is recorded there, with its artifact
        from flows.contacts import contacts_flow

        summary = contacts_flow(config, files=files, force=args.force)
    else:  # a short local step: not worth Prefect's temporary server (the same function runs)
        from flows.contacts import ingest_contacts

        summary = ingest_contacts(config, files, args.force)
    _print(summary, args.json, _print_ingest)
    for f in summary["files"]:
        if f["status"] == "waiting" and args.paths:
            print(f"error: {f['file']} is still being written ({f.get('note')}); it was left in place: "
                  "run again once its writer has finished", file=sys.stderr)
    return 1 if summary["files_rejected"] or (args.paths and summary["files_waiting"]) else 0


def _print_train(r: dict) -> None:
    from models.evaluate import TOP_FRACTIONS

    cols = ["roc_auc", "pr_auc", "brier", "log_loss", *[f"lift_top{int(f * 100)}" for f in TOP_FRACTIONS],
            "recall_top10", "calibration_error"]
    print(f"trained on cutoffs {r['train_cutoffs']} ({r['train_rows']:,} rows + {r['early_stopping_rows']:,} "
          f"for early stopping); validated at {r['validation_cutoff']} ({r['validation_rows']:,} customers, "
          f"churn rate {r['metrics']['base_rate']:.1%})")
    if r.get("history_note"):
        print(f"note: {r['history_note']}")
    print(f"{'scorer':<18}" + "".join(f"{c:>{len(c) + 2}}" for c in cols))
    for name, m in {"model (xgboost)": r["metrics"], **r["baselines"]}.items():
        print(f"{name:<18}" + "".join(f"{m[c]:>{len(c) + 2}.4f}" for c in cols))
    for metric, v in r.get("versus_baseline", {}).items():
        print(f"model - best baseline ({v['baseline']}) {metric}: {v['diff']:+.4f} "
              f"[{v['low']:+.4f}, {v['high']:+.4f}] ({v['confidence']:.0%} paired bootstrap, {v['n_resamples']:,} resamples)")
    curve = {h: m for h, m in (r.get("curve_metrics") or {}).items() if h != "integrated_brier"}
    if curve:
        print("churn-time curve (a second model, XGBoost survival:aft; the scores' p_no_purchase_*): ROC-AUC / Brier "
              + ", ".join(f"{h} days {m['roc_auc']:.4f} / {m['brier']:.4f}" for h, m in curve.items())
              + f"; integrated Brier {r['curve_metrics']['integrated_brier']:.4f}")
    if r.get("registered_model") == "refit":
        print("the registered model is this model refitted on the training and validation snapshots with the same "
              "tree count (the metrics above are from before the refit)")
    print(f"registered {r['experiment']} model version {r['model_version']} as '{r['alias']}': {r['promotion_reason']}")
    if r.get("champion_note"):
        print(f"note: {r['champion_note']}")
    print(f"MLflow run {r['run_id']} in {r['tracking_uri']}")


def _train_config(args, settings):
    model = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set {item!r}: expected KEY=VALUE, e.g. --set max_depth=4")
        model[key.strip()] = value.strip()
    try:
        return settings.train_config(model=model,
                                     **({"horizon_days": args.horizon_days} if args.horizon_days else {}))
    except ValueError as e:
        raise CommandError(f"--set: {e}") from None


def cmd_train(args, settings) -> int:
    from flows.train import summary_json, train_flow

    r = train_flow(_train_config(args, settings), as_of=args.as_of)
    if args.json:
        print(summary_json(r))
    else:
        _print_train(r)
    return 0


def _print_score(r: dict) -> None:
    print(f"scored {r['customers']:,} customers as of {r['as_of']} with {r['model_name']} v{r['model_version']} "
          f"-> {r['path']}")
    by = r.get("reasons_by_method", {})
    print(f"  reasons: {by.get('exact', 0):,} exact (top by value at risk), {by.get('approximate', 0):,} approximate"
          + (f", {by['none']:,} none (low risk; explain_low_risk = true adds them)" if by.get("none") else ""))
    for tier, v in r["tiers"].items():
        print(f"  {tier:<7} {v['customers']:>9,} customers   value at risk {v['value_at_risk']:>14,.2f}")
    d = r["drift"]
    if d.get("drifted"):
        print(f"  WARNING: drift since training (PSI > {d['threshold']}): {d['over_threshold']}")
    elif d.get("checked"):
        print(f"  drift since training: none (largest PSI {d['max_psi']} on {d['max_psi_column']})")


def cmd_score(args, settings) -> int:
    from flows.score import score_flow

    # no champion, an unreachable server, ...: `main` turns them into one `error:` line and exit code 2
    r = score_flow(settings.score_config(), as_of=args.as_of)
    _print(r, args.json, _print_score)
    return 0


def _print_winback(r: dict, limit: int = 10) -> None:
    rows = r["rows"]
    print(f"win-back list for {r['as_of']}: {r['customers']:,} customers, value at risk {r['currency']} "
          f"{r['value_at_risk']:,.2f}")
    if r.get("list_id"):
        print(f"  hold-out: {r['control']:,} more customers kept out of the CSV as the control group (list "
              f"{r['list_id']}; value at risk {r['currency']} {r['control_value_at_risk']:,.2f})")
    print(f"  selection: {r['selection']}")
    print("  actions: " + (", ".join(f"{k} {v:,}" for k, v in r["by_action"].items()) or "none"))
    print(f"  {r['csv']}\n  {r['parquet']}")
    print(f"{'#':>3} {'customer':<12} {'risk':>4} {'at risk':>9}  {'action':<16} first reason")
    for row in rows[:limit]:
        print(f"{row['contact_rank']:>3} {row['customer_id']:<12} {row['risk_score']:>4} "
              f"{row['value_at_risk']:>9.2f}  {row['action_category']:<16} {row['reason_1_text'] or ''}")


def cmd_winback(args, settings) -> int:
    config = settings.winback_config(top_n=args.top)
    contacts = str(Path(args.contacts).resolve()) if args.contacts else None
    if os.environ.get("PREFECT_API_URL"):  # a server is running: the run is recorded there, with its artifact
        from flows.winback import winback_flow

        r = winback_flow(config, as_of=args.as_of, contacts=contacts, pseudonymised=args.pseudonymise)
    else:  # a one-second local step: not worth Prefect's 10-30 s temporary server (the same function runs)
        from flows.winback import winback

        r = winback(config, args.as_of, Path(contacts) if contacts else None, args.pseudonymise)
    _print(r, args.json, _print_winback)
    return 0


def _print_evaluate(r: dict) -> None:
    days = r["days"]
    print(f"{len(days)} scored day(s); events stored up to {r['last_event'][:10]}; MLflow experiment "
          f"'{r['experiment']}' (one run per scored day)")
    print(f"{'as of':<10} {'model':<7} {'horizon':>7} {'customers':>9}  {'status':<8} {'est. AUC':>8} {'ROC-AUC':>7} "
          f"{'train AUC':>9} {'PR-AUC':>6} {'Brier':>6} {'lift@10%':>8}  note")
    for e in days:
        m = (e["realised"] or {}).get("metrics", {})
        d = e.get("degradation") or {}

        def f(v, w, digits=4):
            return f"{v:>{w}.{digits}f}" if v is not None else f"{'-':>{w}}"

        note = ("DEGRADED" if d.get("degraded") else f"horizon ends {e['horizon_ends'][:10]}" if e["realised"] is None
                else "")
        if e.get("in_sample") and e["realised"] is not None:  # outcomes the model was trained on: no test of it
            note = " ".join(filter(None, (note, f"in-sample ({e['in_sample']}: trained on data to "
                                                f"{e['training_data_end']})")))
        note += f" ({e['logged']})" if e.get("logged") != "already logged" else ""
        print(f"{e['as_of']:<10} {'v' + str(e['model_version']):<7} {e['horizon_days']:>7} {e['customers']:>9,}  "
              f"{e['status']:<8} {f(e['estimate']['roc_auc'], 8)} {f(m.get('roc_auc'), 7)} "
              f"{f(e['training_roc_auc'], 9)} {f(m.get('pr_auc'), 6, 3)} {f(m.get('brier'), 6, 3)} "
              f"{f(m.get('lift_top10'), 8, 2)}  {note}".rstrip())
    if any(e.get("in_sample") and e["realised"] is not None for e in days):
        print("in-sample: the day's outcome window lies (whole or partly) in its model's training data, so its "
              "realised figures are optimistic, not a test of the model")
    for d in r["degraded"]:
        print(f"WARNING: {d['model_name']} v{d['model_version']} degraded on {d['as_of']}: "
              f"{d['degradation']['message']} (churn.model.degraded emitted)")
    print("tables per day (calibration, lift by decile and by tier): `churn evaluate --json`")


def cmd_evaluate(args, settings) -> int:
    from flows.evaluate import evaluate_flow

    r = evaluate_flow(settings.evaluate_config())
    _print(r, args.json, lambda r: (_print_evaluate(r), print(), _print_outcomes(r["campaign_outcomes"])))
    return 0


def check_evaluate(args, settings) -> None:
    from storage import layout

    layout.require_scores(layout.Paths(settings.home))  # paths only: no pandas yet
    from storage import store

    store.require_events(layout.Paths(settings.home))


def _fmt_interval(row: dict, key: str, fmt: str) -> str:
    """`row[key]` with its interval (`key_low`, `key_high`), e.g. "+9.6% [+1.7%, +16.5%]"; "-" when empty."""
    d, lo, hi = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if d is None:
        return "-"
    return f"{d:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None else f"{d:{fmt}} [-]"


def _print_outcomes(r: dict) -> None:
    if not r["lists"] and not r["skipped"]:
        print("no win-back lists in the campaign ledger yet: run `churn winback`")
    for e in r["lists"]:
        o, money = e["overall"], e.get("currency") or ""
        print(f"list {e['list_id']}: {o['target']:,} target vs {o['control']:,} control, activity "
              f"({'/'.join(e['activity_types'])}) in the {e['horizon_days']} days after {e['as_of_time'][:16]} "
              f"(intent to treat; {e['confidence']:.0%} intervals)")
        print(f"  {'breakdown':<16} {'value':<16} {'target':>7} {'control':>7} {'kept T':>7} {'kept C':>7} "
              f"{'retention difference':>28} {'spend difference (' + money + ')':>30}")
        for row in e["table"]:
            rt = "-" if row["retention_target"] is None else f"{row['retention_target']:.1%}"
            rc = "-" if row["retention_control"] is None else f"{row['retention_control']:.1%}"
            print(f"  {row['breakdown']:<16} {row['value'][:16]:<16} {row['target']:>7,} {row['control']:>7,} "
                  f"{rt:>7} {rc:>7} {_fmt_interval(row, 'retention_difference', '+.1%'):>28} "
                  f"{_fmt_interval(row, 'spend_difference', '+.2f'):>30}")
        print(f"  incremental customers: {_fmt_interval(o, 'incremental_customers', '+,.1f')}; "
              f"value retained ({money}): {_fmt_interval(o, 'value_retained', '+,.2f')}")
        t = e.get("simulated_truth")
        if t:
            print(f"  simulator's true effect on the target group: retention {t['retention_difference']:+.1%} "
                  f"({t['incremental_customers']:+,.1f} customers), spend {t['spend_difference']:+.2f} per customer "
                  f"({money} {t['incremental_value']:+,.2f})")
        if e.get("mlflow_run_id"):
            print(f"  MLflow run {e['mlflow_run_id']} ({'logged now' if e['logged_now'] else 'already logged'})")
    for sk in r["skipped"]:
        print(f"skipped {sk['list_id']}: {sk['reason']}")


def cmd_outcomes(args, settings) -> int:
    from flows.outcomes import campaign_outcomes

    r = campaign_outcomes(settings.outcomes_config(), list_ids=args.list or None)
    _print(r, args.json, _print_outcomes)
    return 0


def cmd_runs(args, settings) -> int:
    logging.getLogger("churn").info("reading the training runs from MLflow (%s)", settings.tracking_uri)
    from storage import tracking

    rows = tracking.recent_runs(settings.tracking_uri, settings.experiment_name, settings.model_name, args.last)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no training runs in {settings.tracking_uri} yet: run `churn train`")
        return 0
    print(f"{'started (UTC)':<20} {'run':<40} {'horizon':>7} {'as of':<10} {'ROC-AUC':>7} {'PR-AUC':>7} "
          f"{'best baseline':>26}  version")
    for r in rows:
        base = (f"{r['best_baseline']} {r['best_baseline_roc_auc']:.4f}" if r["best_baseline"] else "")
        ver = f"v{r['version']}" + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "") if r["version"] else "-"
        auc = f"{r['roc_auc']:.4f}" if r["roc_auc"] is not None else "-"
        pr = f"{r['pr_auc']:.4f}" if r["pr_auc"] is not None else "-"
        print(f"{r['started'] or '':<20} {(r['run_name'] or ''):<40} {str(r['horizon_days'] or '-'):>7} "
              f"{r['as_of']:<10} {auc:>7} {pr:>7} {base:>26}  {ver}")
    return 0


def cmd_scores(args, settings) -> int:
    from storage import catalog, layout

    days = catalog.published_scores(layout.Paths(settings.home))
    if args.json:
        print(json.dumps(days, indent=2))
        return 0
    if not days:
        print(f"no scores under {settings.home / 'scores'} yet: run `churn score`")
        return 0
    print(f"{'as of':<10} {'customers':>10} {'high':>8} {'medium':>8} {'low':>8}  {'model':<10} {'scored at (UTC)':<19}")
    for d in days:
        if not d["complete"]:
            print(f"{d['as_of']:<10} {'incomplete: no readable _SUCCESS (write interrupted or running)':>66}")
            continue
        t = d["tiers"]
        print(f"{d['as_of']:<10} {d['rows']:>10,} {t['high']:>8,} {t['medium']:>8,} {t['low']:>8,}  "
              f"{'v' + str(d['model_version']):<10} {(d['scored_at'] or '')[:19].replace('T', ' '):<19}"
              + ("  (latest)" if d["latest"] else ""))
    return 0


def _percent(p: float) -> str:
    """A probability as a whole percentage that never reads 0 % or 100 % unless it is exactly that."""
    return "<1%" if 0 < p < 0.005 else ">99%" if 0.995 < p < 1 else f"{p:.0%}"


def _days(x: float) -> str:
    n = round(float(x))
    return f"{n} day" if n == 1 else f"{n} days"


def cmd_explain(args, settings) -> int:
    from models.winback import explain_customer
    from storage import catalog, layout

    paths = layout.Paths(settings.home)
    policy = settings.winback_config().policy()
    row, day, n = catalog.customer_scores(paths, args.customer, args.as_of)
    entry, written = catalog.list_entry(paths, policy.list_name, day, str(row["customer_id"].iloc[0]))
    e = explain_customer(row, policy, entry, written)
    types = tuple(settings.activity_types)  # what the churn label and the curve count as activity
    e["activity"] = "purchase" if types == ("purchase",) else f"activity ({', '.join(types)})"
    if args.json:
        print(json.dumps(e, indent=2))
        return 0
    money = e["currency"]
    last = (f"last purchase {_days(e['days_since_last_purchase'])} ago" if e.get("days_since_last_purchase")
            is not None else "no purchase yet")
    print(f"customer {e['customer_id']} as of {day} (model v{e['model_version']}, {e['horizon_days']}-day horizon)")
    print(f"  risk score {e['risk_score']}/100 (P(no purchase in {e['horizon_days']} days) "
          f"{e['churn_probability']:.3f}), {e['risk_tier']} tier, rank {e['risk_rank']:,} of {n:,}")
    print(f"  value at risk {money} {e['value_at_risk']:,.2f} (expected spend if retained {money} "
          f"{e['expected_value']:,.2f})")
    print(f"  {last}; last event {_days(e['days_since_last_event'])} ago")
    nxt = e.get("next_purchase")
    if nxt:
        days = sorted(nxt["p_no_purchase"])
        median = (f"median {_days(nxt['median_days'])} (around {nxt['expected_date']})" if nxt["expected_date"]
                  else "median over two years away")
        print(f"  churn-time curve (a second model, for timing; the risk score above is the churn model's): "
              f"P(no {e['activity']} within {'/'.join(map(str, days))} days) "
              + " / ".join(_percent(nxt["p_no_purchase"][d]) for d in days) + f"; next {e['activity']}: {median}")
    if e["reasons"]:
        print(f"  reasons ({e['reasons_method']}):")
        for r in e["reasons"]:
            print(f"    {r['rank']}. {r['text']} [{r['category']}]")
    else:
        print("  no reasons: not explained (low risk; see explain_low_risk in the settings)"
              if e["reasons_method"] == "none" else
              f"  no reasons ({e['reasons_method']}): no feature of this customer raised the risk enough to be one")
    print(f"  suggested action ({e['action_category']}): {e['suggested_action']}")
    print(f"  {e['winback']}")
    return 0


def cmd_services(args, settings) -> int:
    from churn import services

    if args.action == "up":
        r = services.up(settings.home, settings.services_host, settings.prefect_port, settings.mlflow_port)
    elif args.action == "down":
        r = services.down(settings.home)
    else:
        r = services.status(settings.home)

    def human(r: dict) -> None:
        if "stopped" in r:
            print("stopped: " + (", ".join(r["stopped"]) or "nothing was running"))
            return
        if not r["services"]:
            print("no services running for this data folder (start them with `churn services up`)")
        for name, s in r["services"].items():
            state = ("healthy" if s["healthy"] else f"port {s['port']} answered by another program" if s.get("foreign")
                     else "running, not answering" if s["alive"] else "not running")
            print(f"{name:<8} {state:<24} pid {s['pid']:<8} {s['url']}   log: {s['log']}")
        if r.get("running"):
            print(f"Prefect UI: {r['services']['prefect']['url'].removesuffix('/api')}   "
                  f"MLflow UI: {r['services']['mlflow']['url']}")

    _print(r, args.json, human)
    return 0 if args.action != "status" or r.get("running") else 3


def cmd_serve(args, settings) -> int:
    from churn.serve import serve

    print(f"serving churn-ingest, churn-score, churn-winback, churn-train, churn-evaluate on {os.environ['PREFECT_API_URL']}; watching "
          f"{settings.home / 'landing'} (Ctrl-C to stop)", flush=True)
    serve(settings)
    return 0


def cmd_bench(args, settings) -> int:
    from churn.bench import bench, parse_size

    sizes = [parse_size(x) for x in args.sizes.split(",")]
    out = Path(args.out)
    rows = bench(sizes, Path(args.root).resolve(), out, out.with_suffix(".json"),
                 exact_top_n=args.exact_top_n, increment_events=parse_size(args.increment),
                 engines=tuple(e for e in args.engine.split(",") if e and e != "duckdb"))
    print(out.read_text())
    return 0 if rows else 1


def mlflow_ui_hint(settings) -> str:
    return (f"open the MLflow UI on these results:\n"
            f"  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow ui --backend-store-uri "
            f"{settings.tracking_uri} --host 127.0.0.1 --port 5000 --workers 1\n  then browse http://127.0.0.1:5000")


def cmd_demo(args, settings) -> int:
    print(f"== churn demo in {settings.home}")
    gen_args = argparse.Namespace(customers=args.customers, days=None, seed=None, start=None, json=False)
    cmd_generate(gen_args, settings)
    print("\n== ingest (validate with Great Expectations, quarantine, de-duplicate, store)")
    rc = cmd_ingest(argparse.Namespace(paths=[], format="contract", mapping=None, timezone=None, force=False,
                                       json=False), settings)
    if rc:
        return rc
    print("\n== train (stacked snapshots, time-based validation, baselines, MLflow)")
    cmd_train(argparse.Namespace(as_of=None, horizon_days=None, json=False), settings)
    print("\n== score (champion model, reason codes, value at risk)")
    cmd_score(argparse.Namespace(as_of=None, json=False), settings)
    print("\n== win-back list (high tier by value at risk, with a suggested action)")
    cmd_winback(argparse.Namespace(as_of=None, top=None, contacts=None, pseudonymise=False, json=False), settings)
    print("\n" + mlflow_ui_hint(settings))
    return 0


def _default(name: str):
    """A setting's built-in default, for help texts (declared once, in churn/settings.py)."""
    from churn.settings import Settings

    return Settings.model_fields[name].default


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one `error:` line (exit code 2) like every other error of `churn`."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _whole(minimum: int, setting: str | None = None):
    """An argparse type: a whole number of at least `minimum` (and at most the bound of `setting`, if any)."""
    from churn.settings import upper_bound

    most = upper_bound(setting) if setting else None

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < minimum or (most is not None and n > most):
            bound = f"between {minimum} and {most}" if most is not None else f"of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}, got {text!r}")
        return n
    return parse


def _folder(text: str) -> Path:
    """An argparse type: a folder path, not empty text (Path("") would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: give a data folder (or leave --home out for $CHURN_HOME or "
                                         "./churn-data)")
    return Path(text)


def _instant(text: str) -> str:
    """An argparse type: an ISO 8601 date or date-time (returned as ISO text)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 date-time)") from None


def _day(text: str) -> str:
    """An argparse type: a calendar day, YYYY-MM-DD."""
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def _timezone(text: str) -> str:
    from churn.settings import check_timezone

    try:
        return check_timezone(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="churn", description="Event-driven churn prediction pipeline.")
    p.add_argument("--home", type=_folder, help=HOME_HELP)
    p.add_argument("--version", action="version", version=f"churn {_version()}")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="simulate customers and write events to the landing folder",
                       description="Simulate customers (hidden rates, decline before churn, seasonality) and write "
                                   "visit/purchase/return/complaint events to <home>/landing plus the ground truth.")
    g.add_argument("--customers", type=_whole(1, "generate_customers"), help=f"number of customers (default {_default('generate_customers')})")
    g.add_argument("--days", type=_whole(1, "generate_days"), help=f"days simulated (default {_default('generate_days')})")
    g.add_argument("--seed", type=_whole(0, "seed"), help="random seed (same seed, same bytes)")
    g.add_argument("--start", type=_day, help=f"first simulated day, YYYY-MM-DD (default {_default('generate_start')})")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("ingest", help="validate landing files and store their events",
                       description="Read the given files (or every new file in <home>/landing): Parquet, CSV, "
                                   "JSON Lines, optionally gzip-compressed. Valid rows are stored once; bad rows are "
                                   "quarantined with a reason; rows in = stored + quarantined + duplicates + "
                                   "identical rows. A file still being written is left for later (exit 1).")
    i.add_argument("paths", nargs="*", help="files to ingest (default: new files in the landing folder)")
    i.add_argument("--format", choices=["contract", "online-retail"], default="contract",
                   help="source format: the event contract (default) or UCI Online Retail invoice lines")
    i.add_argument("--mapping", help="TOML file mapping a foreign schema onto the contract")
    i.add_argument("--timezone", type=_timezone, help=f"time zone of naive timestamps (default from settings: {_default('timezone')})")
    i.add_argument("--force", action="store_true", help="re-read files whose content was already ingested")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=cmd_ingest, check=check_ingest)

    co = sub.add_parser("contacts", help="record who the CRM contacted: validate and store contact exports",
                        description="`churn contacts ingest [PATH ...]`: read CRM contact exports (Parquet, CSV, "
                                    "JSON Lines; columns customer_id, contacted_at, action, optional list_id, "
                                    "channel), the given files or every new file in <home>/landing/contacts. Valid "
                                    "rows are stored once under <home>/contacts; bad rows are quarantined with a "
                                    "reason under <home>/quarantine/contacts; rows in = stored + quarantined + "
                                    "duplicates. The win-back cooldown reads the stored contacts.")
    co.add_argument("action", choices=["ingest"], help="what to do (ingest)")
    co.add_argument("paths", nargs="*", help="contact files (default: new files in <home>/landing/contacts)")
    co.add_argument("--force", action="store_true", help="re-read files whose content was already ingested")
    co.add_argument("--json", action="store_true", help="print the summary as JSON")
    co.set_defaults(func=cmd_contacts, check=check_contacts_ingest)

    t = sub.add_parser("train", help="train and evaluate the churn model; track it in MLflow",
                       description="Build labelled snapshots at several cutoffs, train XGBoost, evaluate it on a later "
                                   "cutoff next to baselines, log everything to MLflow and register the model "
                                   "('champion' if it beats the current one on the same snapshot, else 'challenger').")
    t.add_argument("--as-of", type=_instant, help="train with data up to this instant (a date means its 00:00 UTC: that day's events are "
                   "not used; default: the latest event)")
    t.add_argument("--horizon-days", type=_whole(1, "horizon_days"), help=f"churn = no purchase within this many days (default {_default('horizon_days')})")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a model setting for this run over [model] in churn.toml, e.g. --set max_depth=4 or "
                        "--set features=days_since_last_purchase,purchases_90d (repeatable)")
    t.add_argument("--json", action="store_true",
                   help="print run_id, model_version, alias, metrics and baselines as JSON")
    t.set_defaults(func=cmd_train, check=check_train)

    sc = sub.add_parser("score", help="score every active customer with the champion model",
                        description="Build features as of a date (default: the latest event), predict P(churn) with "
                                    "the registry's 'champion', explain each score with reason codes, validate the "
                                    "result against the scores contract and publish "
                                    "<home>/scores/as_of=DATE/scores.parquet.")
    sc.add_argument("--as-of", type=_instant, help="score as of this instant (a date means its 00:00 UTC: that day's events are "
                    "not seen; default: the latest event time)")
    sc.add_argument("--json", action="store_true", help="print the run summary as JSON")
    sc.set_defaults(func=cmd_score, check=check_score)

    w = sub.add_parser("winback", help="write the ranked win-back list from a day's scores",
                       description="Customers in the high tier (or the top N by value at risk), minus those contacted "
                                   "within the cooldown and those gone too long to reach, ranked by value at risk, "
                                   "each with its three reasons and the action they call for. Parquet + "
                                   "spreadsheet-safe CSV under <home>/winback/as_of=DATE/: winback.* for the high "
                                   "tier, winback-topN.* for --top N (each selection keeps its own files).")
    w.add_argument("--as-of", type=_day, help="the scored date, YYYY-MM-DD (default: the latest scored)")
    w.add_argument("--top", type=_whole(1), help="take the top N by value at risk instead of the high tier (written as "
                   "winback-topN.csv/.parquet, beside the day's full list)")
    w.add_argument("--contacts", help="an extra contact history (CSV/Parquet with customer_id, contacted_at), beside "
                   "the contacts stored by `churn contacts ingest`")
    w.add_argument("--pseudonymise", action="store_true",
                   help="replace customer ids by a keyed hash (key from $CHURN_PSEUDONYM_KEY); written as "
                        "NAME-pseudonymised.csv/.parquet, beside the list with real ids")
    w.add_argument("--json", action="store_true", help="print the summary and the top rows as JSON")
    w.set_defaults(func=cmd_winback, check=check_winback)

    ev = sub.add_parser("evaluate", help="realised (or estimated) quality of every scored day, logged to MLflow",
                        description="For every published scored day whose horizon has passed (as of + horizon at or "
                                    "before the last stored event), compute who really churned (the training labels' "
                                    "definition) and the realised ROC-AUC, PR-AUC, Brier, calibration and lift by "
                                    "decile and tier; for days still open, an estimate from the calibrated scores. "
                                    "One run per scored day in the MLflow experiment 'churn-monitoring' (never "
                                    "logged twice); churn.model.degraded when the realised ROC-AUC is more than "
                                    "degradation_margin below the model's validation ROC-AUC.")
    ev.add_argument("--json", action="store_true", help="print every day with its tables as JSON")
    ev.set_defaults(func=cmd_evaluate, check=check_evaluate)
    oc = sub.add_parser("outcomes", help="what each win-back list achieved: target vs control, with intervals",
                        description="For every list in the campaign ledger whose outcome window (its model's "
                                    "horizon after its day) has passed: retention (an activity event, as the labels "
                                    "count it) and spend in the window, target vs control group as assigned (intent "
                                    "to treat), overall and by risk tier, first reason's category and action, with "
                                    "intervals of the differences, incremental customers and value retained; logged "
                                    "once per outcome to the MLflow experiment churn-campaigns. Lists still inside "
                                    "their window are listed as skipped, with the day it ends.")
    oc.add_argument("--list", action="append", metavar="LIST_ID",
                    help="only this list (e.g. winback-2024-05-20; may be given more than once)")
    oc.add_argument("--json", action="store_true", help="print the outcome tables as JSON")
    oc.set_defaults(func=cmd_outcomes, check=check_outcomes)

    ru = sub.add_parser("runs", help="the latest training runs: metrics beside the best baseline, version, alias",
                        description="List the latest training runs of the MLflow experiment, newest first: "
                                    "validation ROC-AUC and PR-AUC beside the best baseline of the same run, and "
                                    "the registered version with its aliases (champion, challenger).")
    ru.add_argument("--last", type=_whole(1), default=10, help="how many runs (default 10)")
    ru.add_argument("--json", action="store_true", help="print the runs as JSON")
    ru.set_defaults(func=cmd_runs)

    sl = sub.add_parser("scores", help="the published days of scores: customers per tier, model, when",
                        description="List the days under <home>/scores, oldest first: customers per risk tier, the "
                                    "model version and when they were scored; the latest complete day is marked, "
                                    "and a day whose write did not finish (no _SUCCESS) is listed as incomplete.")
    sl.add_argument("--json", action="store_true", help="print each day's _SUCCESS record and tier counts as JSON")
    sl.set_defaults(func=cmd_scores)

    ex = sub.add_parser("explain", help="one customer: score, tier, the three reasons and the suggested action",
                        description="Show one customer's score on a published day (default: the latest): risk score "
                                    "0-100, tier and rank, value at risk, the three reasons, the action they call "
                                    "for, and whether (or why not) the customer is on that day's win-back list.")
    ex.add_argument("customer", help="the customer id (read as ingest reads ids: trimmed, NFC)")
    ex.add_argument("--as-of", type=_day, help="the scored date, YYYY-MM-DD (default: the latest scored)")
    ex.add_argument("--json", action="store_true", help="print the explanation as JSON")
    ex.set_defaults(func=cmd_explain)

    sv = sub.add_parser("services", help="start, stop or check a local Prefect server and MLflow server",
                        description="Run a Prefect server and an MLflow tracking server on 127.0.0.1 (ports in "
                                    "settings), state under <home>. While they are up, every churn command uses them.")
    sv.add_argument("action", choices=["up", "down", "status"])
    sv.add_argument("--json", action="store_true", help="print the result as JSON")
    sv.set_defaults(func=cmd_services)

    se = sub.add_parser("serve", help="serve the ingest/score/train deployments with triggers and schedules",
                        description="Register the deployments on the Prefect server and run their flows: ingest when "
                                    "a file lands (a watcher emits churn.events.landed) and on a sweep schedule; "
                                    "score when new events are ingested or a champion is promoted, and daily; train "
                                    "on a schedule. Blocks until interrupted.")
    se.set_defaults(func=cmd_serve, check=check_serve)

    b = sub.add_parser("bench", help="measure every stage at growing data sizes; write BENCHMARKS.md",
                       description="Generate (and cache) stores of increasing size and measure generate, ingest, "
                                   "feature build (and a plain-pandas reference), training, scoring with and without "
                                   "reasons, win-back export, and ingesting a batch into an empty vs a full store: "
                                   "wall time, throughput and peak RSS per stage.")
    b.add_argument("--sizes", default="1M,10M,100M", help="comma-separated event counts (default 1M,10M,100M)")
    b.add_argument("--root", default="bench-data", help="where generated stores are cached (default ./bench-data)")
    b.add_argument("--out", default="BENCHMARKS.md", help="the Markdown table, JSON beside it (default ./BENCHMARKS.md: "
                   "in the project's folder that is the committed file)")
    b.add_argument("--exact-top-n", type=_whole(0), help=f"customers with exact reasons (default {_default('exact_reasons_top_n')})")
    b.add_argument("--increment", default="1M", help="size of the batch ingested into the full store (default 1M)")
    b.add_argument("--engine", default="duckdb", help="spark: also measure the feature build, training and scoring on Spark "
                   "(spark_master; needs the spark extra and Java 17+), beside DuckDB's, on the same store")
    b.set_defaults(func=cmd_bench, check=check_bench)

    d = sub.add_parser("demo", help="run the whole pipeline on a generated sample",
                       description="Generate a sample, ingest it, and run the rest of the pipeline on it.")
    d.add_argument("--customers", type=_whole(1), default=None, help="sample size (default 20000)")
    d.set_defaults(func=cmd_demo)
    for command in sub.choices.values():  # `churn score --home X` as well as `churn --home X score`
        command.add_argument("--home", type=_folder, default=argparse.SUPPRESS, help=HOME_HELP)
        command.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    p.subcommands = sub.choices
    return p


HOME_HELP = "data folder (default: $CHURN_HOME, else ./churn-data)"
QUIET_HELP = "no progress lines on stderr (warnings and errors still show)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("churn")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the subcommand whose flags these are not (its --help lists the allowed ones)
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    from pydantic import ValidationError

    from churn.settings import load_settings
    from storage.tracking import NEEDS_A_PERSON, TrackingUnavailable

    if args.command != "serve":
        # One-shot commands report failures themselves (a clear line, or the traceback of an unexpected
        # error); Prefect's own copy of every failed task's traceback would bury that line. `churn serve`
        # keeps them: there they are the run logs shown in the Prefect UI.
        for logger in ("FLOW_RUNS", "TASK_RUNS"):
            os.environ.setdefault(f"PREFECT_LOGGING_LOGGERS_PREFECT_{logger}_LEVEL", "CRITICAL")
    else:  # what each run did, in its log in the Prefect UI (the rest of Prefect stays at WARNING)
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "INFO")
    try:
        settings = load_settings(home=args.home)
        settings.tracking_uri  # noqa: B018 - checks a file-based tracking store stays inside the data folder
        configure_environment(settings.home, quiet=args.quiet)
        settings = use_running_services(settings)
        if getattr(args, "check", None):
            args.check(args, settings)
        if not (args.command in LOOK_ONLY or (args.command == "services" and args.action in ("status", "down"))):
            prepare_state(settings.home, settings.allow_outside_paths)
        if args.command in RUNS_FLOWS and not os.environ.get("PREFECT_API_URL"):
            logging.getLogger("churn").info("starting Prefect's temporary API server for this command (10-30 s; "
                                            "`churn services up` keeps one running)")
        return args.func(args, settings)
    except ValidationError as e:
        print(f"error: {settings_error(e)}", file=sys.stderr)
        return 2
    except (UserError, TrackingUnavailable) as e:  # needs a person (or a server back): one line, no traceback
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        release(e)
        return 2
    except BrokenPipeError:  # the reader of stdout stopped reading (`churn scores | head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit either
        return 128 + 13  # what a shell reports for a program ended by SIGPIPE
    except OSError as e:
        if e.errno not in NEEDS_A_PERSON:
            raise
        print(f"error: cannot write {e.filename or 'to the data folder'}: {e.strerror}. Nothing was half-written: "
              f"files are replaced whole and batches are journaled, so re-run once there is space or write access.",
              file=sys.stderr)
        release(e)
        return 4


def release(error: BaseException) -> None:
    """Clear the local variables of every frame `error` (and the errors it chains) passed through. A failed flow
    keeps its exception in Prefect's state until the process exits; DuckDB objects still held by those frames then
    outlive DuckDB's module and its bindings print "nanobind: leaked ..." lines after the one error line."""
    import gc
    import traceback

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__
    gc.collect()


RUNS_FLOWS = ("ingest", "train", "score", "evaluate", "demo")  # each starts Prefect (a server, or a temporary one)
LOOK_ONLY = ("scores", "explain")  # commands that read published files only: they create nothing, start nothing


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


# pydantic's wording for a value of the wrong kind, in the words the rest of the errors use
PLAIN_TYPE_ERRORS = {"int_parsing": "not a whole number", "int_from_float": "not a whole number",
                     "int_type": "not a whole number", "float_parsing": "not a number", "float_type": "not a number",
                     "bool_parsing": "not true or false", "bool_type": "not true or false",
                     "string_type": "not text"}


def settings_error(e) -> str:
    """A pydantic ValidationError as one line: each wrong setting named, with what is allowed."""
    import difflib

    from churn.settings import Settings
    from models.churn_model import FEATURES_KEY, TUNABLE

    parts = []
    for err in e.errors():
        name = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            if name in TUNABLE or name == FEATURES_KEY:
                parts.append(f"unknown setting {name!r} in the settings file: it is a model parameter, which belongs "
                             f"under a [model] section (`[model]` on the line before it)")
                continue
            close = difflib.get_close_matches(name, list(Settings.model_fields), n=1)
            parts.append(f"unknown setting {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                         + " in the settings file; the settings are listed under Settings in README.md")
            continue
        msg = (str(err["ctx"]["error"]) if err["type"] == "value_error"
               else PLAIN_TYPE_ERRORS.get(err["type"], err["msg"]))
        if not name:  # a model validator: its message starts with the setting it names
            parts.append(f"setting {msg}")
            continue
        got = "" if err["type"] == "value_error" else f" (got {err['input']!r})"
        parts.append(f"setting {name}: {msg}{got}")
    return one_line("; ".join(parts))


def use_running_services(settings):
    """Point Prefect and MLflow at `churn services` when they run for this home (explicit settings win)."""
    from churn import services

    if args_wants_embedded():
        return settings
    endpoints = services.active_endpoints(settings.home)
    if not endpoints:
        return settings
    os.environ.setdefault("PREFECT_API_URL", endpoints["prefect_api_url"])
    if settings.mlflow_tracking_uri is None:
        settings = settings.model_copy(update={"mlflow_tracking_uri": endpoints["mlflow_tracking_uri"]})
    return settings


def args_wants_embedded() -> bool:
    return os.environ.get("CHURN_EMBEDDED", "").lower() in ("1", "true", "yes")


if __name__ == "__main__":
    sys.exit(main())
