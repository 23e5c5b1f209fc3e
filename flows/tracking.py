"""MLflow wiring shared by the train and score flows: tracking URI, experiment, registry aliases."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger("churn.tracking")

CHAMPION = "champion"
CHALLENGER = "challenger"


class NoChampionError(RuntimeError):
    """The registry has no model under the `champion` alias."""


def setup(tracking_uri: str, experiment: str, artifact_root: Path) -> str:
    """Point MLflow at the tracking URI (always explicit) and return the experiment id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
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
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def load_champion(model_name: str):
    """(XGBClassifier, model version) of the champion; a clear error when there is none."""
    import mlflow.xgboost

    mv = champion_version(model_name)
    if mv is None:
        raise NoChampionError(f"no model has the alias '{CHAMPION}' in the registry under '{model_name}': "
                              f"run `churn train` first")
    try:
        model = mlflow.xgboost.load_model(f"models:/{model_name}@{CHAMPION}")
    except Exception as e:  # noqa: BLE001 - re-raised with the model named
        raise RuntimeError(f"the champion model {model_name} v{mv.version} cannot be loaded: {e}") from e
    return model, mv


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: retry network and file hiccups (e.g. the tracking server restarting),
    never data, contract or model errors, which would fail the same way again."""
    try:
        state.result()
    except (OSError, ConnectionError, TimeoutError):
        return True
    except Exception as e:  # noqa: BLE001 - classifying the failure
        text = str(e)
        return type(e).__name__ in ("MlflowException", "RestException") and any(
            s in text for s in ("Connection", "connection", "timed out", "503", "502", "TEMPORARILY_UNAVAILABLE"))
    return False
