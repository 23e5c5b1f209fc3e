"""MLflow wiring shared by the train and score flows: tracking URI, experiment, registry aliases."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger("churn.tracking")

CHAMPION = "champion"
CHALLENGER = "challenger"


# A remote tracking server gets this many HTTP retries with exponential backoff (1, 2, 4, 8, 16 s) before a
# call fails; MLflow's own default (7 retries, factor 2) waits over four minutes. The MLFLOW_HTTP_REQUEST_*
# environment variables override these.
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


NEEDS_A_PERSON = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class NoChampionError(RuntimeError):
    """The registry has no model under the `champion` alias."""


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


def setup(tracking_uri: str, experiment: str, artifact_root: Path) -> str:
    """Point MLflow at the tracking URI (always explicit) and return the experiment id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for k, v in HTTP_RETRIES.items():
        os.environ.setdefault(k, v)
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            # SQLite would fail later with "attempt to write a readonly database", half-way through a run
            raise PermissionError(errno.EACCES, "the MLflow tracking store is not writable", str(db))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with reachable(tracking_uri, f"opening the experiment {experiment!r}"):
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            # local artifact root under the data folder (not ./mlruns in whatever directory we run from)
            location = artifact_root.resolve().as_uri() if tracking_uri.startswith("sqlite") else None
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


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
        return None


def load_champion(model_name: str):
    """(XGBClassifier, model version) of the champion; a clear error when there is none."""
    import mlflow.xgboost

    mv = champion_version(model_name)
    if mv is None:
        raise NoChampionError(f"no model has the alias '{CHAMPION}' in the registry under '{model_name}': "
                              f"run `churn train` first")
    try:
        with reachable(mlflow.get_tracking_uri(), f"loading the {CHAMPION} model"):
            model = mlflow.xgboost.load_model(f"models:/{model_name}@{CHAMPION}")
    except TrackingUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the model named
        raise RuntimeError(f"the champion model {model_name} v{mv.version} cannot be loaded: {e}") from e
    return model, mv


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: retry network and file hiccups (e.g. the tracking server restarting),
    never data, contract or model errors, which would fail the same way again."""
    try:
        state.result()
    except OSError as e:  # includes ConnectionError and TrackingUnavailable
        # a full disk or a read-only / forbidden data folder needs a person, not a retry in 10 s
        return e.errno not in NEEDS_A_PERSON
    except Exception as e:  # noqa: BLE001 - classifying the failure
        text = str(e)
        return type(e).__name__ in ("MlflowException", "RestException") and any(
            s in text for s in ("Connection", "connection", "timed out", "503", "502", "TEMPORARILY_UNAVAILABLE"))
    return False
