"""`churn serve`: deployments on a Prefect server, triggered by events and schedules, plus a landing watcher.

- ingest: runs when `churn.events.landed` names a file (emitted by the watcher below, or by an
  upstream system), and on a sweep schedule;
- score: runs when an ingest stored new events (`churn.events.ingested`) or a new champion was
  promoted (`churn.model.promoted`), and daily;
- train: on a schedule (weekly by default); a promotion then triggers scoring.
Each deployment runs one flow at a time (concurrency limit 1).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from flows.events import INGESTED, LANDED, PROMOTED, store_resource
from storage import layout, sources, store

log = logging.getLogger("churn.serve")


@dataclass(frozen=True)
class Schedules:
    """Cron expressions and their time zone (every schedule carries one)."""

    timezone: str = "UTC"
    ingest_sweep: str = "*/15 * * * *"
    score: str = "0 6 * * *"
    train: str = "0 3 * * 1"  # weekly; quarterly retraining is "0 3 1 1,4,7,10 *"


def build_deployments(settings, schedules: Schedules) -> list:
    """The three deployments with their triggers, schedules and concurrency limits."""
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from flows.train import train_flow

    home = str(settings.home)
    common = {"home": home}
    tracking = {"tracking_uri": settings.tracking_uri, "model_name": settings.model_name,
                "experiment": settings.experiment_name}
    ingest_params = {**common, "timezone": settings.timezone,
                     "future_tolerance_hours": settings.future_tolerance_hours}
    score_params = {**common, **tracking, "horizon_days": settings.horizon_days,
                    "lookback_days": settings.lookback_days, "tier_high": settings.tier_high,
                    "tier_medium": settings.tier_medium, "exact_reasons_top_n": settings.exact_reasons_top_n,
                    "explain_low_risk": settings.explain_low_risk,
                    "drift_threshold": settings.drift_psi_threshold, "drift_action": settings.drift_action}
    train_params = {**common, **tracking, "horizon_days": settings.horizon_days,
                    "lookback_days": settings.lookback_days, "n_train_cutoffs": settings.n_train_cutoffs,
                    "cutoff_step_days": settings.cutoff_step_days, "activity_types": settings.activity_types,
                    "seed": settings.seed}
    resource = store_resource(home)
    return [
        ingest_flow.to_deployment(
            name="churn-ingest", parameters=ingest_params, concurrency_limit=1,
            schedules=[Cron(schedules.ingest_sweep, timezone=schedules.timezone)],
            triggers=[DeploymentEventTrigger(
                name="ingest-on-landed-file", expect={LANDED}, match={"prefect.resource.id": "churn.landing.*"},
                parameters={**ingest_params, "files": ["{{ event.payload.path }}"]})],
            description="Validate and store landed event files."),
        score_flow.to_deployment(
            name="churn-score", parameters=score_params, concurrency_limit=1,
            schedules=[Cron(schedules.score, timezone=schedules.timezone)],
            triggers=[DeploymentEventTrigger(
                name="score-on-new-data", expect={INGESTED, PROMOTED}, match={"prefect.resource.id": resource},
                parameters=score_params)],
            description="Score every active customer with the champion model."),
        train_flow.to_deployment(
            name="churn-train", parameters=train_params, concurrency_limit=1,
            schedules=[Cron(schedules.train, timezone=schedules.timezone)],
            description="Retrain; a promoted champion triggers scoring."),
    ]


class LandingWatcher(threading.Thread):
    """Announces each new, complete file in the landing folder once, as a `churn.events.landed` event."""

    def __init__(self, paths: layout.Paths, interval: float = 2.0):
        super().__init__(daemon=True, name="landing-watcher")
        self.paths, self.interval = paths, interval
        self.stop_event = threading.Event()
        self._seen_size: dict[Path, tuple[int, float]] = {}
        self.announced: set[str] = set()

    def poll(self) -> list[Path]:
        """Files whose size and mtime held still since the last poll, not yet ingested or announced."""
        from prefect.events import emit_event

        ready = []
        for f in sources.landing_files(self.paths):
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime)
            if self._seen_size.get(f) != sig:
                self._seen_size[f] = sig  # still being written, or new: look again next time
                continue
            sha = sources.file_sha256(f)
            if sha in self.announced or store.ledger_entry(self.paths, sha):
                continue
            emit_event(event=LANDED, resource={"prefect.resource.id": f"churn.landing.{f.name}"},
                       payload={"path": str(f), "sha256": sha})
            self.announced.add(sha)
            ready.append(f)
            log.info("announced %s", f)
        return ready

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad poll
                log.exception("landing watcher poll failed")


def retire(deployment_names: list[str]) -> None:
    """Delete the automations of our deployments' triggers (they would keep creating Late runs)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for a in client.read_automations():
            if any(a.name.startswith(n) for n in deployment_names) or a.name in (
                    "ingest-on-landed-file", "score-on-new-data"):
                client.delete_automation(a.id)


def serve(settings, schedules: Schedules, watch_interval: float = 2.0) -> None:
    """Register the deployments, start the landing watcher, and run flows until interrupted."""
    from prefect import serve as prefect_serve

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)  # `kill` and service managers stop us like Ctrl-C does
    deployments = build_deployments(settings, schedules)
    watcher = LandingWatcher(layout.Paths(settings.home), watch_interval)
    watcher.start()
    try:
        prefect_serve(*deployments, limit=2)
    finally:
        watcher.stop_event.set()
        try:
            retire([d.name for d in deployments])
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.exception("could not delete the deployments' automations")
