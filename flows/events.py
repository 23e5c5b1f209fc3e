"""Prefect events the pipeline emits and reacts to (names defined once)."""

from __future__ import annotations

from pathlib import Path

LANDED = "churn.events.landed"
INGESTED = "churn.events.ingested"
PROMOTED = "churn.model.promoted"
SCORED = "churn.scores.published"  # after a day's scores and their _SUCCESS record are written
DEGRADED = "churn.model.degraded"  # a scored day's realised ROC-AUC fell below its model's training estimate


def store_resource(home: str | Path) -> str:
    """The resource id of one data folder's store (scoring triggers match on it)."""
    return f"churn.store.{Path(home).resolve().name}"


def emit(event: str, home: str | Path, payload: dict) -> None:
    from prefect.events import emit_event

    emit_event(event=event, resource={"prefect.resource.id": store_resource(home)}, payload=payload)
