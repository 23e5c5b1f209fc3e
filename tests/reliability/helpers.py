"""A trained model on a copy of the session's small store, without Prefect (shared by the fault tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from storage import catalog, layout
from tests.conftest import config


def store_copy(small_store, dest: Path, **ignore) -> layout.Paths:
    shutil.copytree(small_store.home, dest, ignore=shutil.ignore_patterns(*ignore.get("without", ())))
    return layout.Paths(dest)


def snapshots(paths: layout.Paths):
    """(frame, info) of 2 training cutoffs + validation, stored under the home."""
    from flows.train import build_snapshots

    _, info = build_snapshots(config(paths, "train", n_train_cutoffs=2), None)
    return catalog.read_snapshots(Path(info["path"])), info


def fit(frame, **model_params):
    from features.customer import FEATURE_NAMES
    from models.train import train_and_evaluate

    return train_and_evaluate(frame[frame["split"] == "train"], frame[frame["split"] == "validation"],
                              FEATURE_NAMES, seed=1, horizon_days=90, model_params=model_params or None)


def register(paths: layout.Paths, frame, info, result, tracking_uri: str, experiment: str = "churn") -> dict:
    from flows.train import register as register_model

    cfg = config(paths, "train", n_train_cutoffs=2, seed=1, tracking_uri=tracking_uri, experiment=experiment)
    return register_model(cfg, result, frame, info)
