"""What each flow run shows in the Prefect UI: a readable run name and table artifacts (names and keys declared
here once). The tables are built from the summaries the flows already return; creating one never fails a run."""

from __future__ import annotations

import logging

log = logging.getLogger("churn.flows")

INGEST_KEY, TRAIN_KEY, SCORE_KEY, WINBACK_KEY = "ingest-accounting", "training-metrics", "scores-tiers", "winback-top"
CONTACTS_KEY, EVALUATE_KEY = "contacts-accounting", "monitoring-realised"
WINBACK_ROWS = 20


def _parameters() -> dict:
    from prefect.runtime import flow_run

    return dict(flow_run.parameters or {})


def ingest_run_name() -> str:
    files = _parameters().get("files") or []
    if not files:
        return "ingest landing sweep"
    name = str(files[0]).replace("\\", "/").rsplit("/", 1)[-1]
    return f"ingest {name}" + (f" +{len(files) - 1} files" if len(files) > 1 else "")


def train_run_name() -> str:
    p = _parameters()
    cfg = p.get("config")
    horizon = cfg.get("horizon_days") if isinstance(cfg, dict) else getattr(cfg, "horizon_days", "?")
    return f"train h{horizon}d as of {str(p.get('as_of') or 'latest')[:10]}"


def score_run_name() -> str:
    return f"score as of {str(_parameters().get('as_of') or 'latest')[:10]}"


def winback_run_name() -> str:
    return f"winback {str(_parameters().get('as_of') or 'latest')[:10]}"


def ingest_table(summary: dict) -> list[dict]:
    keys = ("status", "rows_in", "stored", "quarantined", "duplicates", "identical_rows")
    rows = [{"file": f.get("file", ""), **{k: f.get(k, 0) for k in keys}, "error": f.get("error") or ""}
            for f in summary["files"]]
    return rows + [{"file": "TOTAL", "status": "", **{k: summary[k] for k in keys[1:]}, "error": ""}]


def train_table(result: dict) -> list[dict]:
    cols = ("roc_auc", "pr_auc", "brier", "calibration_error", "lift_top10")
    scorers = {f"model v{result['model_version']} ({result['alias']})": result["metrics"], **result["baselines"]}
    return [{"scorer": name, **{c: round(m[c], 4) for c in cols if c in m}} for name, m in scorers.items()]


def score_table(summary: dict) -> list[dict]:
    return [{"tier": t, "customers": v["customers"], "value_at_risk": round(v["value_at_risk"], 2)}
            for t, v in summary["tiers"].items()]


def winback_table(summary: dict) -> list[dict]:
    return [{"rank": r["winback_rank"], "customer_id": r["customer_id"], "risk_score": r["risk_score"],
             "value_at_risk": round(r["value_at_risk"], 2), "action": r["action_category"],
             "reason": r["reason_1_text"]} for r in summary["rows"][:WINBACK_ROWS]]


def publish(key: str, rows: list[dict], description: str) -> None:
    """A table artifact on the current flow run, and its description as a line of the run's log (best effort:
    the run's result does not depend on either)."""
    from prefect import get_run_logger
    from prefect.artifacts import create_table_artifact

    try:
        create_table_artifact(rows, key=key, description=description)
        get_run_logger().info(description)
    except Exception as e:  # noqa: BLE001 - a display for people; never fails the run it describes
        log.warning("could not create the %s artifact: %s", key, e)


def evaluate_table(summary: dict) -> list[dict]:
    def auc(e):
        return (e["realised"] or {}).get("metrics", {}).get("roc_auc")

    return [{"as_of": e["as_of"], "model_version": e["model_version"], "status": e["status"],
             "estimated_roc_auc": round(e["estimate"]["roc_auc"], 4),
             "realised_roc_auc": None if auc(e) is None else round(auc(e), 4),
             "training_roc_auc": e["training_roc_auc"],
             "degraded": bool(e["degradation"] and e["degradation"]["degraded"])} for e in summary["days"]]
