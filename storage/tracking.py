"""MLflow wiring shared by the train and score flows: tracking URI, experiment, registry aliases."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from churn.errors import UserError
from storage.atomic import file_lock

log = logging.getLogger("churn.tracking")

CHAMPION = "champion"
CHALLENGER = "challenger"


# A remote tracking server gets this many HTTP retries with exponential backoff (1, 2, 4, 8, 16 s) before a
# call fails; MLflow's own default (7 retries, factor 2) waits over four minutes. The MLFLOW_HTTP_REQUEST_*
# environment variables override these.
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


NEEDS_A_PERSON = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class NoChampionError(UserError, RuntimeError):
    """The registry has no model under the `champion` alias."""


class ChampionUnreadable(UserError, RuntimeError):
    """The champion is registered but its model files are missing or cannot be loaded (restore them, or retrain)."""


class TrackingUriError(UserError, ValueError):
    """A tracking URI in settings that cannot be parsed or is not a supported kind of store."""


class TrackingUnavailable(ConnectionError):
    """The MLflow tracking server did not answer, after retries with backoff (transient: worth retrying later)."""


def _unreachable(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, (ConnectionError, TimeoutError)) or any(s in text for s in (
        "Max retries exceeded", "Connection refused", "ConnectionError", "NewConnectionError", "Read timed out",
        "RemoteDisconnected", "TEMPORARILY_UNAVAILABLE", "too many 50"))


@contextlib.contextmanager
def reachable(tracking_uri: str, doing: str, consequence: str = "nothing was promoted or published"):
    """Turn 'the server did not answer' into one clear TrackingUnavailable; other errors pass unchanged."""
    try:
        yield
    except TrackingUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - classified below, re-raised either way
        if not _unreachable(e):
            raise
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
        first_line = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise TrackingUnavailable(
            f"the MLflow tracking server at {tracking_uri} did not answer while {doing} "
            f"(after {retries} retries with backoff): {first_line}. Is it running? `churn services status` "
            f"shows the local servers; {consequence}.") from e


REMOTE_SCHEMES = ("http", "https")
REMOTE_DATABASES = ("postgresql", "mysql", "mssql")  # MLflow's other database back ends: no local file


def confined_tracking_uri(uri: str, home: Path, allow_outside: bool = False) -> str:
    """The tracking URI as MLflow should get it, with any local store (SQLite file, file store) inside `home`.

    Judged by what the URI resolves to, not how it is spelled: every SQLAlchemy spelling of a SQLite database
    (`sqlite:////abs`, `sqlite+pysqlite:///x.db`, `SQLITE:///x.db`, `sqlite:///file:x.db?uri=true`), a `file:`
    URI and a plain path all name a local file, which `resolve_inside` keeps in the data folder. Local stores
    come back as `sqlite:////absolute/path` or `file:///absolute/path`; http(s) and remote databases unchanged.
    """
    from storage.layout import resolve_inside

    what = "mlflow_tracking_uri"
    text = uri.strip()
    scheme = text.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", text) else ""
    if scheme in REMOTE_SCHEMES:
        return text
    if not scheme and "://" in text:
        raise TrackingUriError(f"{what} {uri!r} is not a URI MLflow can use (no scheme before '://'); use "
                               f"sqlite:///path/inside/the/data/folder.db, file:path, or http(s)://host:port")
    if scheme in ("", "file") or len(scheme) == 1:  # a plain path (or a Windows drive letter): a file store
        raw = text
        if scheme == "file":
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
                raise TrackingUriError(f"{what} {uri!r}: a file store URI must name a local path "
                                       f"(file:///absolute/path or file:relative/path)")
            raw = unquote(parts.path)
        if not raw:
            raise TrackingUriError(f"{what} {uri!r} names no path")
        return resolve_inside(home, raw, what, allow_outside).as_uri()
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as e:
        raise TrackingUriError(f"{what} {uri!r} is not a URI MLflow can use ({e}); use sqlite:///path/inside/"
                               f"the/data/folder.db, file:path, or http(s)://host:port") from None
    backend = url.get_backend_name().lower()
    if backend in REMOTE_DATABASES:
        return text
    if backend != "sqlite":
        raise TrackingUriError(f"{what} {uri!r}: unsupported tracking store {backend!r}; use sqlite:///path.db "
                               f"(inside the data folder), file:path, http(s)://host:port or a "
                               f"{'/'.join(REMOTE_DATABASES)} database")
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("true", "1"):  # the database is itself a SQLite URI
        parts = urlsplit(database)
        if database.startswith("file:") and (parts.netloc not in ("", "localhost")):
            raise TrackingUriError(f"{what} {uri!r}: a SQLite file URI must name a local path")
        mode = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("mode", url.query.get("mode"))
        database = "" if mode == "memory" else unquote(parts.path if database.startswith("file:") else database)
    if url.host or url.username or url.port:
        raise TrackingUriError(f"{what} {uri!r}: a SQLite URI names a local file, not a host "
                               f"(sqlite:///relative/path.db or sqlite:////absolute/path.db)")
    if database in ("", ":memory:"):
        raise TrackingUriError(f"{what} {uri!r} is an in-memory (or unnamed) SQLite database: every run and "
                               f"model would be lost when the command ends; name a file, e.g. "
                               f"sqlite:///mlflow/mlflow.db (inside the data folder)")
    return f"sqlite:///{resolve_inside(home, database, what, allow_outside)}"


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a SQLite tracking URI (settings make it `sqlite:///<absolute path>`), else None."""
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def _point_at(tracking_uri: str):
    """MLflow, quiet, with retries set, pointed at the tracking URI (tracking and registry)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for k, v in HTTP_RETRIES.items():
        os.environ.setdefault(k, v)
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not log.isEnabledFor(logging.INFO):  # --quiet: also MLflow's own prints ("Created version '3' of model ...")
        from mlflow.utils.logging_utils import disable_logging

        disable_logging()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow


def setup(tracking_uri: str, experiment: str, artifact_root: Path) -> str:
    """Point MLflow at the tracking URI (always explicit) and return the experiment id."""
    db = _sqlite_file(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            # SQLite would fail later with "attempt to write a readonly database", half-way through a run
            raise PermissionError(errno.EACCES, "the MLflow tracking store is not writable", str(db))
    mlflow = _point_at(tracking_uri)
    with reachable(tracking_uri, f"opening the experiment {experiment!r}"):
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            # local artifact root under the data folder (not ./mlruns in whatever directory we run from)
            location = artifact_root.resolve().as_uri() if tracking_uri.startswith("sqlite") else None
            exp_id = mlflow.create_experiment(experiment, artifact_location=location, tags=EXPERIMENT_TAGS)
        else:
            exp_id = exp.experiment_id
            for k, v in EXPERIMENT_TAGS.items():
                if exp.tags.get(k) != v:
                    mlflow.MlflowClient().set_experiment_tag(exp_id, k, v)
        mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


# what the experiment holds (classical model training); MLflow 3.17's UI still opens it on the GenAI overview
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def code_version() -> str:
    """The git commit of the project when run from a checkout, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return "churn " + version("churn")


def champion_version(model_name: str):
    """The registry's champion model version, or None."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as e:
        if _unreachable(e):  # a silent server is not "no champion": that would promote any new model
            with reachable(mlflow.get_tracking_uri(), f"looking up the {CHAMPION} of {model_name!r}"):
                raise
        if e.error_code in NO_SUCH_ALIAS:
            return None
        # anything else (e.g. another program answering on the port: ENDPOINT_NOT_FOUND) is not "no champion"
        first_line = str(e).strip().splitlines()[0][:200]
        raise NotATrackingServer(f"the tracking store at {mlflow.get_tracking_uri()} did not answer like an MLflow "
                                 f"registry while looking up the {CHAMPION} of {model_name!r} ({e.error_code}: "
                                 f"{first_line}); check mlflow_tracking_uri, or `churn services status`") from e


# what the registry says when there is no such model, or no such alias on it
NO_SUCH_ALIAS = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class NotATrackingServer(UserError, RuntimeError):
    """The tracking URI answers, but not as an MLflow registry (another program on the port, a wrong path)."""


def _no_champion(model_name: str, why: str = "") -> NoChampionError:
    return NoChampionError(f"no model has the alias '{CHAMPION}' in the registry under '{model_name}'{why}: "
                           f"run `churn train` first")


def require_champion(tracking_uri: str, model_name: str) -> None:
    """NoChampionError unless the registry has a champion, ChampionUnreadable when its model files should be
    on this machine and are not; creates nothing, and answers without importing MLflow when the SQLite
    tracking store does not exist yet (the check `churn score` makes before starting)."""
    db = _sqlite_file(tracking_uri)
    if db is not None and not db.exists():
        raise _no_champion(model_name, f" (there is no tracking store at {db} yet)")
    _point_at(tracking_uri)
    mv = champion_version(model_name)
    if mv is None:
        raise _no_champion(model_name)
    folder = _local_model_folder(model_name, mv.version)
    if folder is not None and not (folder / "MLmodel").is_file():
        existing = next((p for p in folder.parents if p.is_dir()), None)
        raise ChampionUnreadable(
            f"the champion model {model_name} v{mv.version} has no model files at {folder} ("
            + ("the folder has no MLmodel file" if folder.is_dir() else f"the nearest existing folder is {existing}")
            + "): restore them, or run `churn train` to register a new champion")


def _local_model_folder(model_name: str, version: str) -> Path | None:
    """Where a registered version's model files are, when that is a folder on this machine (else None)."""
    from mlflow import MlflowClient

    uri = MlflowClient().get_model_version_download_uri(model_name, version)
    scheme = urlsplit(uri).scheme
    return Path(unquote(urlsplit(uri).path)) if scheme == "file" else Path(uri) if scheme == "" else None


def load_champion(model_name: str):
    """(XGBClassifier, model version) of the champion; a clear error when there is none."""

    mv = champion_version(model_name)
    if mv is None:
        raise _no_champion(model_name)
    return load_version(model_name, mv.version), mv


def model_horizon_days(mv) -> int | None:
    """The horizon a registered version predicts: its `horizon_days` tag, else its run's parameter (older versions),
    else None."""
    from mlflow import MlflowClient

    tagged = (getattr(mv, "tags", None) or {}).get("horizon_days")
    if tagged is None and mv.run_id:
        try:
            tagged = MlflowClient().get_run(mv.run_id).data.params.get("horizon_days")
        except Exception as e:  # noqa: BLE001 - a run deleted by hand: the horizon is unknown, and we say so
            log.warning("cannot read the run of %s v%s: %s", mv.name, mv.version, e)
    try:
        return int(tagged) if tagged is not None else None
    except ValueError:
        return None


def load_version(model_name: str, version: str):
    """The XGBClassifier of one registered version (by number: the alias may move meanwhile)."""
    import mlflow.xgboost

    try:
        with reachable(mlflow.get_tracking_uri(), f"loading {model_name} v{version}"):
            return mlflow.xgboost.load_model(f"models:/{model_name}/{version}")
    except TrackingUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the model named
        raise ChampionUnreadable(f"the champion model {model_name} v{version} cannot be loaded: {e}") from e


EVALUATED_MODEL_TAG = "evaluated_model_uri"


def load_evaluated(model_name: str, version: str):
    """The model of one registered version as it was evaluated: for a refit, the model before the refit (the one
    the run's metrics are of, logged beside it), else the registered model itself. The promotion gate scores
    this one: a refit has seen the labels of its own validation snapshot, which a later run's may overlap."""
    import mlflow.xgboost
    from mlflow import MlflowClient

    try:
        with reachable(mlflow.get_tracking_uri(), f"loading {model_name} v{version}"):
            run_id = MlflowClient().get_model_version(model_name, str(version)).run_id
            uri = MlflowClient().get_run(run_id).data.tags.get(EVALUATED_MODEL_TAG) if run_id else None
            if uri:
                return mlflow.xgboost.load_model(uri)
    except TrackingUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the model named
        raise ChampionUnreadable(f"the champion model {model_name} v{version} cannot be loaded: {e}") from e
    return load_version(model_name, version)


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: retry network and file hiccups (e.g. the tracking server restarting),
    never data, contract or model errors, which would fail the same way again."""
    try:
        state.result()
    except UserError:  # a missing input or a wrong setting: the same call would fail the same way
        return False
    except OSError as e:  # includes ConnectionError and TrackingUnavailable
        # a full disk or a read-only / forbidden data folder needs a person, not a retry in 10 s
        return e.errno not in NEEDS_A_PERSON
    except Exception as e:  # noqa: BLE001 - classifying the failure
        text = str(e)
        return type(e).__name__ in ("MlflowException", "RestException") and any(
            s in text for s in ("Connection", "connection", "timed out", "503", "502", "TEMPORARILY_UNAVAILABLE"))
    return False


DRIFT_REFERENCE = "drift_reference.json"


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"xgboost-cpu=={version('xgboost-cpu')}", f"pandas=={version('pandas')}",
            f"numpy=={version('numpy')}", f"mlflow=={version('mlflow')}"]


PAUSE_BEFORE_PROMOTION_ENV = "CHURN_TEST_PAUSE_BEFORE_PROMOTION"  # tests only: see _pause_for_tests
MAX_RECHECKS = 10


def _promotion_lock_path(tracking_uri: str) -> Path | None:
    """The lock file beside a local store (shared by every process using that store); None for a server."""
    db = _sqlite_file(tracking_uri)
    if db is not None:
        return db.with_name(db.name + ".promotion.lock")
    if tracking_uri.startswith("file:"):
        return Path(unquote(urlsplit(tracking_uri).path)) / ".promotion.lock"
    return None


@contextlib.contextmanager
def promotion_lock(tracking_uri: str):
    """One promotion at a time across processes for a local store; a remote server relies on the re-check."""
    path = _promotion_lock_path(tracking_uri)
    if path is None:
        yield
        return
    with file_lock(path):
        yield


def _pause_for_tests() -> None:
    """With CHURN_TEST_PAUSE_BEFORE_PROMOTION=<file>: announce <file>.waiting, wait until <file> exists.

    Lets a test hold a training run between its decision and the alias move (another run promotes meanwhile)."""
    gate = os.environ.get(PAUSE_BEFORE_PROMOTION_ENV)
    if not gate:
        return
    Path(gate + ".waiting").write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def promote(model_name: str, tracking_uri: str, version: str, run_id: str, verdict, judge):
    """Move the alias to `version`: champion only if it still beats the champion at the moment of the move.

    Under the promotion lock (local store) the champion is read again; if it changed since `verdict` was made
    (another run promoted meanwhile), `judge()` scores the new champion on our snapshot and decides again,
    until the champion read is the one judged. A remote server gets the same re-check without a lock.
    Returns (final verdict, why it changed or None); the run's tags say the same.
    """
    from mlflow import MlflowClient

    from models.promotion import PRIMARY_METRIC, Decision, Verdict

    first = verdict
    _pause_for_tests()
    with promotion_lock(tracking_uri):
        for _ in range(MAX_RECHECKS):
            current = champion_version(model_name)
            now = current.version if current is not None else None
            if now == verdict.champion_version:
                break
            log.info("the champion changed from v%s to v%s since it was scored: scoring it again",
                     verdict.champion_version, now)
            verdict = judge()
        else:
            verdict = Verdict(now, verdict.champion, Decision(False, f"the champion changed {MAX_RECHECKS} times "
                                                                     f"while this run was being promoted"))
        recheck = None
        if verdict is not first:
            recheck = (f"the champion changed from v{first.champion_version} to v{verdict.champion_version} "
                       f"between the decision and the alias move; decided again: {verdict.decision.reason}")
        alias = CHAMPION if verdict.decision.promote else CHALLENGER
        client = MlflowClient()
        tags = {"alias": alias, "promotion_reason": verdict.decision.reason}
        if verdict.champion.note:
            tags["champion_note"] = verdict.champion.note
        interval = verdict.decision.interval  # candidate minus the champion finally judged against
        if interval is not None:
            tags["champion_interval"] = str(interval)
            for k, v in interval.as_dict().items():
                client.log_metric(run_id, f"vs_champion_{PRIMARY_METRIC}_{k}", v)
        if recheck:
            tags["promotion_recheck"] = recheck
            if verdict.champion.metric is not None:
                client.log_metric(run_id, f"champion_{PRIMARY_METRIC}_same_snapshot", verdict.champion.metric)
        for k, v in tags.items():
            client.set_tag(run_id, k, v)
        # the version says the same as its run: the alias it was given (the alias itself may move later), and why
        for k in ("alias", "promotion_reason", "champion_interval"):
            if k in tags:
                client.set_model_version_tag(model_name, version, "alias_given" if k == "alias" else k, tags[k])
        client.update_model_version(model_name, version, description=f"{alias}: {verdict.decision.reason}")
        client.set_registered_model_alias(model_name, alias, version)  # last: never a half-registered champion
    return verdict, recheck


def log_training_run(result, frame, info: dict, config, verdict, judge) -> dict:
    """Log a training run (params, metrics, plots, data, drift reference), register its model, move the alias.

    `verdict`: the promotion decision against the champion of the moment; `judge()` makes it again (see `promote`).
    The alias moves last, after the run and the model version are complete: never a half-registered champion.
    """
    with reachable(config.tracking_uri, "logging and registering the model",
                   "no alias was moved: the champion is unchanged"):
        run_id, version, logged = _log_training_run(result, frame, info, config, verdict.champion)
        verdict, recheck = promote(config.model_name, config.tracking_uri, version, run_id, verdict, judge)
    return {"run_id": run_id, "model_version": version,
            "alias": CHAMPION if verdict.decision.promote else CHALLENGER, "metrics": result.metrics,
            "baselines": result.baselines, "champion_before": verdict.champion.metric,
            "champion_note": verdict.champion.note, "promotion_reason": verdict.decision.reason,
            "champion_interval": verdict.decision.interval.as_dict() if verdict.decision.interval else None,
            "versus_baseline": result.versus_baseline, "promotion_recheck": recheck,
            "curve_metrics": result.curve_metrics, **logged}


def training_run_name(as_of: str, horizon_days: int, params: dict) -> str:
    """A run name a person can read in a list: what was trained, on data up to when, for which horizon."""
    keys = [f"depth {params['max_depth']}" if "max_depth" in params else "",
            f"lr {params['learning_rate']:g}" if "learning_rate" in params else ""]
    return " ".join(["train", str(as_of)[:10], f"h{horizon_days}d", *[k for k in keys if k]])


def _log_training_run(result, frame, info, config, champion) -> tuple[str, str, dict]:
    import mlflow
    import mlflow.xgboost
    import pandas as pd
    from mlflow.models import infer_signature

    from churn.settings import utc
    from features.customer import FEATURES
    from features.definitions import GROWS_WITH_HISTORY
    from features.season import SEASON_MEANING, without_season
    from features.snapshots import snapshot_digest
    from models import plots
    from models.drift import reference_bins
    from models.promotion import PRIMARY_METRIC

    train = frame[frame["split"] == "train"]
    validation = frame[frame["split"] == "validation"]
    data_range = f"{info['data_start'][:10]}..{info['data_end'][:10]}"
    with mlflow.start_run(run_name=training_run_name(info["as_of"], config.horizon_days, result.model.params)) as run:
        mlflow.set_tags({"code_version": code_version(), "data_range": data_range, "primary_metric": PRIMARY_METRIC})
        if info.get("history_note"):
            mlflow.set_tag("history_note", info["history_note"])
        registered = result.registered
        if result.refit is not None:
            mlflow.set_tags({"registered_model": "refit", "registered_model_note": (
                f"the registered model is the evaluated model refitted on the training snapshots plus the validation "
                f"snapshot ({result.refit.refit_rows_:,} rows) with its {result.model.best_iteration_ + 1} trees; the "
                f"val_* metrics, the baselines' and the intervals are the evaluated model's, before the refit")})
            mlflow.log_param("refit_rows", result.refit.refit_rows_)
        else:
            mlflow.set_tag("registered_model", "evaluated")
        mlflow.log_params({
            "horizon_days": config.horizon_days, "lookback_days": config.lookback_days, "seed": config.seed,
            "cutoff_step_days": config.cutoff_step_days, "min_history_days": config.min_history_days,
            "engine": config.engine, "activity_types": ",".join(config.activity_types),
            "train_cutoffs": info["train_cutoffs"], "validation_cutoff": info["validation_cutoff"],
            "as_of": info["as_of"], "data_start": info["data_start"], "data_end": info["data_end"],
            # the event table's Delta version the snapshots were built from: `store.read_events(paths, version)`
            **{k: info[i] for k, i in (("store_version", "store_version"), ("store_events", "n_events"))
               if info.get(i) is not None},
            "features": ",".join(result.model.features), "n_features": len(result.model.features),
            "snapshot_digest": snapshot_digest(frame[[c for c in frame.columns if c != "cutoff"]]),
            "best_iteration": result.model.best_iteration_,
            **{f"xgb_{k}": v for k, v in result.model.params.items()}, **result.sizes,
        })
        mlflow.log_metrics({f"val_{k}": v for k, v in result.metrics.items()})
        if result.curve is not None:
            _log_curve(result.curve, result.curve_metrics)
        per_cutoff = info.get("contacted_rows", {})
        mlflow.log_param("contacted_in_training", config.contacted_in_training)
        mlflow.log_dict(per_cutoff, "contacted_rows.json")
        if len(json.dumps(per_cutoff)) <= 6000:  # MLflow's limit of a param value; the artifact always has it
            mlflow.log_param("contacted_rows_per_cutoff", json.dumps(per_cutoff))
        mlflow.log_metric("contacted_rows", sum(per_cutoff.values()))
        mlflow.log_metric("excluded_contacted_rows", int((frame["split"] == "excluded_contacted").sum()))
        for name, m in result.baselines.items():
            mlflow.log_metrics({f"{name}_{k}": v for k, v in m.items()})
        if champion.metric is not None:
            mlflow.log_metric(f"champion_{PRIMARY_METRIC}_same_snapshot", champion.metric)
        for m, v in result.versus_baseline.items():
            mlflow.log_metrics({f"vs_best_baseline_{m}_{k}": v[k] for k in ("diff", "low", "high")})
            mlflow.set_tag(f"best_baseline_{m}", v["baseline"])
        logged = train.drop(columns=["cutoff"]).astype({"churned": "float64"})
        dataset = mlflow.data.from_pandas(logged, name="training_snapshots", targets="churned",
                                          digest=snapshot_digest(logged))
        mlflow.log_input(dataset, context="training")
        mlflow.log_dict({"model": result.metrics, "baselines": result.baselines,
                         "versus_baseline": result.versus_baseline}, "metrics.json")
        season = {k: v for k, v in SEASON_MEANING.items() if k in registered.features}  # inputs only when used
        mlflow.log_dict({k: {"meaning": v[0], "unit": v[1]} for k, v in {**FEATURES, **season}.items()},
                        "features.json")
        # what the features and scores looked like at training time, for drift checks when scoring
        # (the registered model's scores: a refit scores the validation customers in-sample, as it will score)
        reference = validation[without_season(registered.features)].assign(
            churn_probability=registered.churn_probability(validation[registered.features]).to_numpy())
        history = (utc(info["validation_cutoff"]) - utc(info["data_start"])) / pd.Timedelta(days=1)
        mlflow.log_dict(reference_bins(reference, history_days=history, relative=GROWS_WITH_HISTORY), DRIFT_REFERENCE)
        X_example = validation[registered.features].head(5).astype("float64")
        signature = infer_signature(X_example, registered.churn_probability(X_example).to_numpy())
        info_model = mlflow.xgboost.log_model(
            registered.model_, name="model", signature=signature, input_example=None,
            pip_requirements=_pip_requirements(), registered_model_name=config.model_name, model_format="ubj")
        version = str(info_model.registered_model_version)
        if result.refit is not None:  # the gate of later runs scores this one (see load_evaluated)
            evaluated = mlflow.xgboost.log_model(result.model.model_, name="evaluated_model", signature=signature,
                                                 input_example=None, pip_requirements=_pip_requirements(),
                                                 model_format="ubj")
            mlflow.set_tag(EVALUATED_MODEL_TAG, evaluated.model_uri)
        run_id = run.info.run_id
        label = (f"{config.model_name} v{version} - validation snapshot {info['validation_cutoff'][:10]} - "
                 f"{config.horizon_days}-day horizon")
        for fname, fig in plots.training_figures(result.predictions, registered.feature_importance(), label).items():
            mlflow.log_figure(fig, f"plots/{fname}")
            plots.plt.close(fig)
        # what the registry shows beside the version: its horizon (scoring reads it), data and metrics
        version_tags = {"horizon_days": config.horizon_days, "lookback_days": config.lookback_days,
                        "activity_types": ",".join(config.activity_types),
                        "as_of": info["as_of"][:10], "data_range": data_range,
                        **{f"val_{k}": f"{v:.4f}" for k, v in result.metrics.items()}}
        client = mlflow.MlflowClient()
        for k, v in version_tags.items():
            client.set_model_version_tag(config.model_name, version, k, str(v))
    return run_id, version, {"experiment": config.experiment, "tracking_uri": config.tracking_uri, **info,
                             **result.sizes, "registered_model": "refit" if result.refit is not None else "evaluated"}


CURVE_FOLDER, CURVE_BOOSTER, CURVE_META = "curve", "aft.ubj", "curve.json"


def _log_curve(curve, validation: dict) -> None:
    """The churn-time curve model beside the churn model in the run: its booster, what reading it needs, and its
    validation metrics (per horizon the validation snapshot observes, and the integrated Brier score)."""
    import tempfile

    import mlflow

    raw, meta = curve.to_artifact()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / CURVE_BOOSTER).write_bytes(raw)
        (Path(tmp) / CURVE_META).write_text(json.dumps({**meta, "validation": validation}, indent=1))
        mlflow.log_artifacts(tmp, CURVE_FOLDER)
    mlflow.set_tags({"curve_model": f"{meta['objective']} (log-normal waits: {meta['distribution']} errors on log "
                                    f"days, scale {meta['scale']}; watched up to {meta['observed_days']:.0f} days)"})
    mlflow.log_param("curve_trees", meta["trees"])
    for h, m in validation.items():
        if h == "integrated_brier":
            mlflow.log_metric("curve_integrated_brier", m)
        else:
            mlflow.log_metrics({f"curve_roc_auc_{h}d": m["roc_auc"], f"curve_brier_{h}d": m["brier"]})


def load_curve(run_id: str) -> tuple[bytes, dict] | None:
    """The churn-time curve a training run logged (booster bytes, meta), or None for a run without one (a model
    trained before the curve existed: its scores leave the curve columns empty)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            with reachable(mlflow.get_tracking_uri(), f"loading the churn-time curve of run {run_id}"):
                folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CURVE_FOLDER,
                                                                  dst_path=tmp))
        except TrackingUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - absent in older runs: said, and the columns stay empty
            log.info("run %s has no churn-time curve (%s): the curve columns stay empty", run_id,
                     str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None
        if not (folder / CURVE_BOOSTER).is_file() or not (folder / CURVE_META).is_file():
            return None
        return (folder / CURVE_BOOSTER).read_bytes(), json.loads((folder / CURVE_META).read_text())


def load_drift_reference(run_id: str) -> dict | None:
    """The drift reference a training run logged, or None for an older run without one."""
    import mlflow

    try:
        with reachable(mlflow.get_tracking_uri(), "reading the drift reference"):
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{DRIFT_REFERENCE}")
    except TrackingUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - an old model without a reference is scored, and we say so
        log.warning("no drift reference for run %s: %s", run_id, e)
        return None


def log_scoring_run(scores, summary: dict) -> str:
    """A scoring run in MLflow: counts and value at risk per tier, the score distribution, the model used."""
    import mlflow

    from models import plots

    with reachable(mlflow.get_tracking_uri(), "logging the scoring run",
                   f"the scores at {summary['path']} are published, the scoring run is not logged"):
        with mlflow.start_run(run_name=f"score {summary['as_of']}") as run:
            mlflow.set_tags({"kind": "scoring", "model_version": summary["model_version"],
                             "model_run_id": summary["model_run_id"], "as_of": summary["as_of"]})
            mlflow.log_metrics({
                "customers_scored": summary["customers"], "value_at_risk_total": summary["value_at_risk"],
                **{f"{t}_customers": v["customers"] for t, v in summary["tiers"].items()},
                **{f"{t}_value_at_risk": v["value_at_risk"] for t, v in summary["tiers"].items()},
                "mean_churn_probability": float(scores["churn_probability"].mean())})
            fig = plots.score_distribution_figure(scores["churn_probability"], summary["as_of"])
            mlflow.log_figure(fig, "score_distribution.png")
            plots.plt.close(fig)
            drift = summary["drift"]
            if drift.get("checked"):
                mlflow.log_metrics({"drift_max_psi": drift["max_psi"],
                                    "drift_psi_score": drift["psi"]["churn_probability"]})
            mlflow.set_tag("drift_warning", ", ".join(drift.get("over_threshold", {})) or "none")
            mlflow.log_dict({k: v for k, v in summary.items() if k != "validation"}, "summary.json")
            return run.info.run_id


def recent_runs(tracking_uri: str, experiment: str, model_name: str, last: int = 10) -> list[dict]:
    """The latest training runs, newest first: name, horizon, as-of date, validation metrics beside the best
    baseline, and the registered version with its aliases. Creates nothing (an absent store: no runs)."""
    db = _sqlite_file(tracking_uri)
    if db is not None and not db.exists():
        return []
    mlflow = _point_at(tracking_uri)
    with reachable(tracking_uri, "listing training runs", "nothing was changed"):
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            return []
        runs = mlflow.MlflowClient().search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                                                 max_results=last)
        client = mlflow.MlflowClient()
        versions = {v.run_id: v.version for v in client.search_model_versions(f"name = '{model_name}'")}
        # (search results carry no aliases; the registered model has them all)
        aliases: dict[str, list[str]] = {}
        if versions:
            for alias, version in client.get_registered_model(model_name).aliases.items():
                aliases.setdefault(str(version), []).append(alias)
    out = []
    for r in runs:
        m, p = r.data.metrics, r.data.params
        # the baselines of the same run (the oracle of generated data is a bound, not a baseline)
        baselines = {k.removesuffix("_roc_auc"): v for k, v in m.items()
                     if k.endswith("_roc_auc") and not k.startswith(("val_", "champion_", "oracle_"))}
        best = max(baselines, key=baselines.get) if baselines else None
        v = versions.get(r.info.run_id)
        out.append({"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
                    "started": _utc_text(r.info.start_time), "horizon_days": p.get("horizon_days"),
                    "as_of": (p.get("as_of") or "")[:10], "roc_auc": m.get("val_roc_auc"),
                    "pr_auc": m.get("val_pr_auc"), "best_baseline": best,
                    "best_baseline_roc_auc": baselines.get(best) if best else None,
                    "version": v, "aliases": sorted(aliases.get(str(v), [])) if v else [],
                    # the event table's version the run read, and its events (runs before Delta: None)
                    "store_version": int(p["store_version"]) if p.get("store_version") else None,
                    "store_events": int(p["store_events"]) if p.get("store_events") else None})
    return out


def _utc_text(ms: int | None) -> str | None:
    """An MLflow start time (epoch milliseconds) as ISO text in UTC, to the second."""
    import datetime as dt

    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- monitoring (`churn evaluate`)

MONITORING_RECORD = "monitoring.json"


def training_estimate(model_name: str, version: str) -> tuple[float | None, str | None]:
    """A registered version's training estimate and the last day of the data it learned from: its validation
    ROC-AUC tag and its `as_of` tag (the training cutoff: `churn train --as-of`, else the store's last event;
    events after it were never read), or for a version without one the end of its data_range tag (None for
    either it does not have)."""
    import mlflow

    with reachable(mlflow.get_tracking_uri(), "reading the model version's validation ROC-AUC"):
        try:
            tags = mlflow.MlflowClient().get_model_version(model_name, str(version)).tags or {}
        except mlflow.exceptions.MlflowException:
            return None, None
    value = tags.get("val_roc_auc")
    end = tags.get("as_of") or tags.get("data_range", "").split("..")[-1] or None
    return (float(value) if value is not None else None), end


def monitoring_runs(experiment_id: str) -> dict[tuple[str, str], dict]:
    """The monitoring runs of the experiment, by (scored day, scores sha256): run id and status (open or
    realised). A day scored again (another sha256) is another partition and gets its own run."""
    import mlflow

    with reachable(mlflow.get_tracking_uri(), "listing the monitoring runs"):
        runs = mlflow.MlflowClient().search_runs([experiment_id], filter_string="tags.kind = 'monitoring'",
                                                 max_results=10_000)
    out: dict[tuple[str, str], dict] = {}
    for r in sorted(runs, key=lambda r: r.info.start_time or 0):
        t = r.data.tags
        out[(t.get("as_of", ""), t.get("scores_sha256", ""))] = {"run_id": r.info.run_id, "status": t.get("status")}
    return out


def load_monitoring_record(run_id: str) -> dict:
    """What a monitoring run recorded about its scored day (the entry `churn evaluate` prints)."""
    import mlflow

    with reachable(mlflow.get_tracking_uri(), "reading a monitoring run"):
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{MONITORING_RECORD}")


def log_monitoring_run(entry: dict, run_id: str | None, history) -> str:
    """Log one scored day to the monitoring experiment: a new run for an open horizon (the estimate), or the same
    run again once its horizon has passed (the realised figures set beside the estimate); returns the run id.

    Metrics: expected_* (estimate), realised_* (ROC-AUC, PR-AUC, Brier, lift, calibration error), the training
    estimate and the drop from it; tags: as_of, scores_sha256, model_version, status, degraded; artifacts: the
    record, the calibration curve and ROC-AUC by scored day so far (`history`)."""
    import mlflow

    from models import plots

    label = f"{entry['model_name']} v{entry['model_version']} - scored {entry['as_of']} - {entry['horizon_days']}-day horizon"
    with reachable(mlflow.get_tracking_uri(), "logging the monitoring run", "nothing else was changed"):
        with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"monitor {entry['as_of']}") as run:
            mlflow.set_tags({"kind": "monitoring", "as_of": entry["as_of"], "scores_sha256": entry["scores_sha256"],
                             "model_name": entry["model_name"], "model_version": str(entry["model_version"]),
                             "horizon_days": str(entry["horizon_days"]), "status": entry["status"],
                             "horizon_ends": entry["horizon_ends"],
                             "in_sample": entry.get("in_sample") or "no"})
            mlflow.log_metrics({f"expected_{k}": v for k, v in entry["estimate"].items()})
            if entry.get("training_roc_auc") is not None:
                mlflow.log_metric("training_roc_auc", entry["training_roc_auc"])
            if entry["realised"] is not None:
                m = entry["realised"]["metrics"]
                mlflow.log_metrics({f"realised_{k}": v for k, v in m.items() if v == v})  # NaN (one class) left out
                if "roc_auc" in m:
                    mlflow.log_metric("estimate_error_roc_auc", entry["estimate"]["roc_auc"] - m["roc_auc"])
                    if entry.get("training_roc_auc") is not None:
                        mlflow.log_metric("roc_auc_drop", entry["training_roc_auc"] - m["roc_auc"])
                mlflow.set_tag("degraded", str(entry["degradation"]["degraded"]).lower())
                import pandas as pd

                fig = plots.realised_calibration_figure(pd.DataFrame(entry["realised"]["calibration"]), label)
                mlflow.log_figure(fig, "realised_calibration.png")
                plots.plt.close(fig)
            if len(history):
                fig = plots.roc_auc_over_time_figure(history, f"{entry['model_name']}: scored days evaluated so far")
                mlflow.log_figure(fig, "roc_auc_by_scored_day.png")
                plots.plt.close(fig)
            mlflow.log_dict({**entry, "run_id": run.info.run_id}, MONITORING_RECORD)
            return run.info.run_id
CAMPAIGNS_EXPERIMENT = "churn-campaigns"


def log_campaign_outcome(tracking_uri: str, artifact_root: Path, entry: dict, figure) -> tuple[str, bool]:
    """The outcome of one list as a run of the `churn-campaigns` experiment (tags: list id, day, model versions;
    metrics: the overall row; the table as JSON; `figure` as retention_by_tier.png). Idempotent: a run of the same
    list with the same outcome (tag `outcome_digest`) is returned, not logged again. Returns (run id, logged now)."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps({k: entry[k] for k in ("list_id", "as_of_time", "horizon_days", "table")},
                                       sort_keys=True, default=str).encode()).hexdigest()[:16]
    exp_id = setup(tracking_uri, CAMPAIGNS_EXPERIMENT, artifact_root)
    import mlflow

    with reachable(tracking_uri, f"logging the outcome of list {entry['list_id']}",
                   "the outcome is computed and printed, not logged"):
        found = mlflow.search_runs([exp_id], filter_string=f"tags.list_id = '{entry['list_id']}' and "
                                                           f"tags.outcome_digest = '{digest}'", output_format="list")
        if found:
            return found[0].info.run_id, False
        overall = entry["overall"]
        with mlflow.start_run(run_name=f"outcome {entry['list_id']}") as run:
            mlflow.set_tags({"kind": "campaign-outcome", "list_id": entry["list_id"], "as_of": entry["as_of"],
                             "horizon_days": entry["horizon_days"], "outcome_digest": digest,
                             "model_versions": ", ".join(entry["model_versions"])})
            mlflow.log_metrics({k: v for k, v in overall.items() if isinstance(v, (int, float)) and v is not None
                                and not isinstance(v, bool)})
            mlflow.log_dict(entry, "outcome.json")
            mlflow.log_figure(figure, "retention_by_tier.png")
            return run.info.run_id, True
