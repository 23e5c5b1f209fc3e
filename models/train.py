"""Train the churn model and its baselines on stacked snapshots, evaluate them on a later one."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from models.baselines import LogisticRFM, RecencyRule
from models.churn_model import ChurnModel, early_stopping_mask
from models.evaluate import metrics


@dataclass
class TrainingResult:
    """The fitted model, its metrics and the baselines', and the validation predictions by name."""

    model: ChurnModel
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    predictions: pd.DataFrame  # validation: y and one column of P(churn) per scorer
    sizes: dict[str, int] = field(default_factory=dict)


def cap_rows(frame: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    """At most `max_rows` rows, sampled by customer (all snapshots of a sampled customer are kept), deterministic."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    h = pd.util.hash_array(frame["customer_id"].to_numpy(dtype=object)) % 1_000_000
    return frame[h < 1_000_000 * max_rows / len(frame)]


def train_and_evaluate(train: pd.DataFrame, validation: pd.DataFrame, features: list[str], *, seed: int,
                       horizon_days: int, oracle: pd.Series | None = None, model_params: dict | None = None,
                       max_train_rows: int | None = 1_000_000) -> TrainingResult:
    """`train`/`validation`: feature rows with a `churned` label column and a `customer_id` column.

    The model early-stops on a customer-level hold-out of the training snapshots (never on the
    validation snapshot, whose metrics would then be optimistic). Training rows above
    `max_train_rows` are sampled by customer to bound time and memory; validation is never sampled.
    """
    train = cap_rows(train, max_train_rows)
    es = early_stopping_mask(pd.Index(train["customer_id"]))
    X, y = train[features], train["churned"]
    model = ChurnModel(features, seed=seed, **(model_params or {})).fit(X[~es], y[~es], X[es], y[es])

    Xv, yv = validation[features], validation["churned"].to_numpy()
    preds = pd.DataFrame({"customer_id": validation["customer_id"].to_numpy(), "y": yv,
                          "model": model.predict_proba(Xv).to_numpy()})
    baselines = {f"recency_rule_{horizon_days}d": RecencyRule(horizon_days).fit(X, y),
                 "logistic_rfm": LogisticRFM(seed).fit(X, y)}
    for name, b in baselines.items():
        preds[name] = b.predict_proba(Xv).to_numpy()
    if oracle is not None:
        preds["oracle"] = oracle.reindex(validation["customer_id"]).to_numpy()
    scorers = [c for c in preds.columns if c not in ("customer_id", "y")]
    scored = {name: metrics(yv[preds[name].notna().to_numpy()], preds[name].dropna().to_numpy()) for name in scorers}
    return TrainingResult(model=model, metrics=scored.pop("model"), baselines=scored, predictions=preds,
                          sizes={"train_rows": int((~es).sum()), "early_stopping_rows": int(es.sum()),
                                 "validation_rows": len(validation)})
