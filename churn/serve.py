"""`churn serve`: the deployments of flows/deployments.py on a Prefect server, plus a landing watcher."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from churn.errors import UserError
from flows.deployments import TRIGGER_NAMES, build_deployments
from flows.events import LANDED
from storage import layout, sources, store

log = logging.getLogger("churn.serve")


class LandingWatcher(threading.Thread):
    """Announces each new, complete file in the landing folder once, as a `churn.events.landed` event."""

    def __init__(self, paths: layout.Paths, interval: float):
        super().__init__(daemon=True, name="landing-watcher")
        self.paths, self.interval = paths, interval
        self.stop_event = threading.Event()
        self._seen_size: dict[Path, tuple[int, float]] = {}
        self.announced: set[str] = set()
        self.refused: set[Path] = set()

    def poll(self) -> list[Path]:
        """Files whose size and mtime held still since the last poll, not yet ingested or announced."""
        from prefect.events import emit_event

        ready = []
        scan = sources.landing_scan(self.paths)  # symlinks out of landing/ are refused, never read
        for f, why in scan.refused:
            if f not in self.refused:
                self.refused.add(f)
                log.warning("%s: %s", f, why)
        for f in scan.files:
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
            if any(a.name.startswith(n) for n in deployment_names) or a.name in TRIGGER_NAMES:
                client.delete_automation(a.id)


CRON_SETTINGS = ("ingest_sweep_cron", "score_cron", "winback_cron", "train_cron", "evaluate_cron")


class ScheduleError(UserError, ValueError):
    """A schedule setting Prefect would not accept."""


def check_schedules(settings) -> None:
    """Every cron setting valid before anything is registered (else one error line naming the setting)."""
    from prefect._internal.schemas.validators import validate_cron_string

    for key in CRON_SETTINGS:
        try:
            validate_cron_string(getattr(settings, key))
        except ValueError as e:
            raise ScheduleError(f"{key} = {getattr(settings, key)!r} is not a cron schedule Prefect accepts ({e}); "
                                f"e.g. '0 6 * * *' is 06:00 every day") from None


def serve(settings) -> None:
    """Register the deployments, start the landing watcher, and run flows until interrupted."""
    from prefect import serve as prefect_serve

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)  # `kill` and service managers stop us like Ctrl-C does
    deployments = build_deployments(settings)
    watcher = LandingWatcher(layout.Paths(settings.home), settings.watch_interval_seconds)
    watcher.start()
    try:
        prefect_serve(*deployments, limit=2)
    finally:
        watcher.stop_event.set()
        try:
            retire([d.name for d in deployments])
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.exception("could not delete the deployments' automations")
