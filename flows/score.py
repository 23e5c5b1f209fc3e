"""Score flow: champion model + features as of a date -> validated scores Parquet + MLflow summary."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import flow, task

from churn.settings import utc
from expectations.scores import SCORE_SCHEMA
from features.customer import FEATURE_NAMES, customer_features
from ingestion.validate import contract_violations
from models.scoring import ScoringPolicy, score_customers
from storage import catalog, layout, store, tracking

log = logging.getLogger("churn.score")
SCORES_SUITE = Path(__file__).resolve().parent.parent / "expectations" / "scores.suite.json"


class InvalidScores(RuntimeError):
    """The scored frame broke its contract; nothing was published."""


class DriftRefused(RuntimeError):
    """Features or scores drifted beyond the threshold and the policy says not to publish."""


def drift_check(run_id: str, feats: pd.DataFrame, scores: pd.DataFrame, threshold: float) -> dict:
    """PSI of today's features and scores against the champion's training-time reference."""
    import mlflow

    from flows.train import DRIFT_REFERENCE
    from models.drift import drift_report

    try:
        with tracking.reachable(mlflow.get_tracking_uri(), "reading the drift reference"):
            reference = mlflow.artifacts.load_dict(f"runs:/{run_id}/{DRIFT_REFERENCE}")
    except tracking.TrackingUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - an old model without a reference is scored, and we say so
        log.warning("no drift reference for run %s: %s", run_id, e)
        return {"checked": False, "drifted": False, "note": f"no drift reference in run {run_id}"}
    current = feats.assign(churn_probability=scores.set_index("customer_id")["churn_probability"]
                           .reindex(feats.index).to_numpy())
    return {"checked": True, **drift_report(reference, current, threshold)}


def tier_summary(scores: pd.DataFrame) -> dict:
    g = scores.groupby("risk_tier")
    return {t: {"customers": int(g.size().get(t, 0)), "value_at_risk": float(g["value_at_risk"].sum().get(t, 0.0))}
            for t in ("high", "medium", "low")}


def score(paths: layout.Paths, as_of: pd.Timestamp | None, *, policy: ScoringPolicy, lookback_days: int,
          model_name: str, tracking_uri: str, experiment: str, now: pd.Timestamp,
          drift_threshold: float = 0.25, drift_action: str = "warn") -> dict:
    """Score every customer active in the lookback at `as_of` (default: the latest event) and publish."""
    tracking.setup(tracking_uri, f"{experiment}-scoring", paths.mlflow / "artifacts")
    model, mv = tracking.load_champion(model_name)
    names = list(model.get_booster().feature_names or [])
    unknown = [f for f in names if f not in FEATURE_NAMES]
    if unknown or not names:
        raise RuntimeError(f"champion {model_name} v{mv.version} expects features {unknown or '(none recorded)'} "
                           f"that this code does not build; retrain with `churn train`")
    if as_of is None:
        _, as_of, _ = store.store_time_range(paths)
    con = store.connect(paths)
    try:
        feats = customer_features(store.events_relation(con, paths), as_of, lookback_days)
    finally:
        con.close()
    if feats.empty:
        raise RuntimeError(f"no customer was active in the {lookback_days} days before {as_of}: nothing to score")
    meta = {"model_name": model_name, "model_version": mv.version, "run_id": mv.run_id}
    scores = score_customers(model, feats, as_of, policy, meta, scored_at=now)
    drift = drift_check(mv.run_id, feats, scores, drift_threshold)
    if drift["drifted"]:
        log.warning("DRIFT: PSI above %.2f for %s", drift_threshold, drift["over_threshold"])
        if drift_action == "refuse":
            raise DriftRefused(f"drift beyond PSI {drift_threshold} in {drift['over_threshold']}: scores not "
                               f"published (set drift_action = 'warn' to publish anyway, or retrain)")
    violations, gx = contract_violations(scores, now, suite_path=SCORES_SUITE)
    if violations.notna().any():
        bad = violations.dropna()
        raise InvalidScores(f"{len(bad)} scored rows break the scores contract, e.g. {bad.iloc[0]!r}; nothing published")
    day = pd.Timestamp(as_of).date().isoformat()
    path = catalog.write_scores(paths, scores, SCORE_SCHEMA, day)
    summary = {"as_of": day, "path": str(path), "customers": len(scores), "tiers": tier_summary(scores),
               "value_at_risk": float(scores["value_at_risk"].sum()),
               "exact_reasons": int((scores["reasons_method"] == "exact").sum()),
               "reasons_by_method": {str(k): int(v) for k, v in scores["reasons_method"].value_counts().items()},
               "model_name": model_name, "model_version": str(mv.version), "model_run_id": mv.run_id,
               "validation": gx, "drift": drift}
    with tracking.reachable(tracking_uri, "logging the scoring run",
                            f"the scores at {path} are published, the scoring run is not logged"):
        summary["run_id"] = _log_scoring(scores, summary)
    return summary


def _log_scoring(scores: pd.DataFrame, summary: dict) -> str:
    """A scoring run in MLflow: counts and value at risk per tier, the score distribution, the model used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    with mlflow.start_run(run_name=f"score {summary['as_of']}") as run:
        mlflow.set_tags({"kind": "scoring", "model_version": summary["model_version"],
                         "model_run_id": summary["model_run_id"], "as_of": summary["as_of"]})
        mlflow.log_metrics({"customers_scored": summary["customers"], "value_at_risk_total": summary["value_at_risk"],
                            **{f"{t}_customers": v["customers"] for t, v in summary["tiers"].items()},
                            **{f"{t}_value_at_risk": v["value_at_risk"] for t, v in summary["tiers"].items()},
                            "mean_churn_probability": float(scores["churn_probability"].mean())})
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(scores["churn_probability"], bins=50)
        ax.set(xlabel="P(churn)", ylabel="customers", title=f"Scores as of {summary['as_of']}")
        fig.tight_layout()
        mlflow.log_figure(fig, "score_distribution.png")
        plt.close(fig)
        drift = summary["drift"]
        if drift.get("checked"):
            mlflow.log_metrics({"drift_max_psi": drift["max_psi"], "drift_psi_score": drift["psi"]["churn_probability"]})
        mlflow.set_tag("drift_warning", ", ".join(drift.get("over_threshold", {})) or "none")
        mlflow.log_dict({k: v for k, v in summary.items() if k != "validation"}, "summary.json")
        return run.info.run_id


@task(name="score-customers", retries=3, retry_delay_seconds=[5, 20, 60],
      retry_condition_fn=tracking.retry_transient)
def score_task(home: str, as_of: str | None, policy: dict, lookback_days: int, model_name: str, tracking_uri: str,
               experiment: str, drift_threshold: float, drift_action: str) -> dict:
    return score(layout.Paths(Path(home)), utc(as_of) if as_of else None, policy=ScoringPolicy(**policy),
                 lookback_days=lookback_days, model_name=model_name, tracking_uri=tracking_uri,
                 experiment=experiment, now=pd.Timestamp.now(tz="UTC"), drift_threshold=drift_threshold,
                 drift_action=drift_action)


@flow(name="score")
def score_flow(home: str, tracking_uri: str, as_of: str | None = None, horizon_days: int = 90,
               lookback_days: int = 365, tier_high: float = 0.7, tier_medium: float = 0.4,
               exact_reasons_top_n: int = 50_000, model_name: str = "churn", experiment: str = "churn",
               drift_threshold: float = 0.25, drift_action: str = "warn", explain_low_risk: bool = False) -> dict:
    """Score all active customers with the champion model and publish the scores Parquet."""
    policy = {"horizon_days": horizon_days, "tier_high": tier_high, "tier_medium": tier_medium,
              "exact_reasons_top_n": exact_reasons_top_n, "explain_low_risk": explain_low_risk}
    return score_task(home, as_of, policy, lookback_days, model_name, tracking_uri, experiment, drift_threshold,
                      drift_action)
