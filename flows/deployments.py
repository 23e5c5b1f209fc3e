"""The five deployments `churn serve` runs: their flows, triggers, schedules and concurrency limits.

- ingest: runs when `churn.events.landed` names a file (emitted by the landing watcher, or by an
  upstream system), and on a sweep schedule;
- score: runs when an ingest stored new events (`churn.events.ingested`) or a new champion was
  promoted (`churn.model.promoted`), and daily;
- winback: runs when a day's scores are published (`churn.scores.published`, the day it names), and
  daily after the scoring schedule (the newest published day);
- train: on a schedule (weekly by default); a promotion then triggers scoring, then the win-back list;
- evaluate: daily (`evaluate_cron`): the realised quality of every scored day whose horizon has passed, the
  estimate for the others, in MLflow; emits `churn.model.degraded` when a model did worse than it promised.
Each deployment runs one flow at a time (concurrency limit 1).
"""

from __future__ import annotations

from flows.events import INGESTED, LANDED, PROMOTED, SCORED, store_resource

TRIGGER_NAMES = ("ingest-on-landed-file", "score-on-new-data", "winback-on-published-scores")


def build_deployments(settings) -> list:
    """The deployments with their triggers and schedules, parameters built once from the settings."""
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    from flows.evaluate import evaluate_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from flows.train import train_flow
    from flows.winback import winback_flow

    ingest = {"config": settings.ingest_config().model_dump(mode="json")}
    score = {"config": settings.score_config().model_dump(mode="json")}
    train = {"config": settings.train_config().model_dump(mode="json")}
    winback = {"config": settings.winback_config().model_dump(mode="json")}
    evaluate = {"config": settings.evaluate_config().model_dump(mode="json")}
    tz = settings.schedule_timezone
    return [
        ingest_flow.to_deployment(
            name="churn-ingest", parameters=ingest, concurrency_limit=1,
            schedules=[Cron(settings.ingest_sweep_cron, timezone=tz)],
            triggers=[DeploymentEventTrigger(
                name=TRIGGER_NAMES[0], expect={LANDED}, match={"prefect.resource.id": "churn.landing.*"},
                parameters={**ingest, "files": ["{{ event.payload.path }}"]})],
            description="Validate and store landed event files."),
        score_flow.to_deployment(
            name="churn-score", parameters=score, concurrency_limit=1,
            schedules=[Cron(settings.score_cron, timezone=tz)],
            triggers=[DeploymentEventTrigger(
                name=TRIGGER_NAMES[1], expect={INGESTED, PROMOTED},
                match={"prefect.resource.id": store_resource(settings.home)}, parameters=score)],
            description="Score every active customer with the champion model."),
        winback_flow.to_deployment(
            name="churn-winback", parameters=winback, concurrency_limit=1,
            schedules=[Cron(settings.winback_cron, timezone=tz)],
            triggers=[DeploymentEventTrigger(
                name=TRIGGER_NAMES[2], expect={SCORED}, match={"prefect.resource.id": store_resource(settings.home)},
                parameters={**winback, "as_of": "{{ event.payload.as_of }}"})],
            description="Write the win-back list of the day just scored."),
        train_flow.to_deployment(
            name="churn-train", parameters=train, concurrency_limit=1,
            schedules=[Cron(settings.train_cron, timezone=tz)],
            description="Retrain; a promoted champion triggers scoring."),
        evaluate_flow.to_deployment(
            name="churn-evaluate", parameters=evaluate, concurrency_limit=1,
            schedules=[Cron(settings.evaluate_cron, timezone=tz)],
            description="Realised quality of every scored day whose horizon has passed; estimates for the rest."),
    ]
