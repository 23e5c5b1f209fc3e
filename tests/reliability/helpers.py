"""A trained model on a copy of the session's small store, without Prefect (shared by the fault tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from storage import catalog, layout


def store_copy(small_store, dest: Path, **ignore) -> layout.Paths:
    shutil.copytree(small_store.home, dest, ignore=shutil.ignore_patterns(*ignore.get("without", ())))
    return layout.Paths(dest)


def snapshots(paths: layout.Paths):
    """(frame, info) of 2 training cutoffs + validation, stored under the home."""
    from flows.train import build_snapshots

    _, info = build_snapshots(paths, None, 90, 365, 2, 30, ("purchase",))
    return catalog.read_snapshots(Path(info["path"])), info


def fit(frame, **model_params):
    from features.customer import FEATURE_NAMES
    from models.train import train_and_evaluate

    return train_and_evaluate(frame[frame["split"] == "train"], frame[frame["split"] == "validation"],
                              FEATURE_NAMES, seed=1, model_params=model_params or None)


def register(paths: layout.Paths, frame, info, result, tracking_uri: str, experiment: str = "churn") -> dict:
    from flows.train import log_training

    return log_training(result, frame, info, horizon_days=90, lookback_days=365, seed=1, model_name="churn",
                        tracking_uri=tracking_uri, experiment=experiment, artifact_root=paths.mlflow / "artifacts")
