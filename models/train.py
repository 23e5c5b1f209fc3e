"""Train the churn model and its baselines on stacked snapshots, evaluate them on a later one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from features.purchase_history import FREQUENCY
from models.baselines import LogisticRFM, RecencyRule
from models.btyd import BGNBD, ParetoNBD
from models.churn_model import ChurnModel, early_stopping_mask
from models.curve import CURVE_HORIZONS, AftCurve, censored_at, curve_columns, curve_metrics, horizon_labels
from models.errors import UntrainableSnapshots
from models.evaluate import metrics
from models.promotion import Bootstrap

log = logging.getLogger("churn.train")  # progress lines only; nothing else leaves these functions

# the model is compared with the best baseline (not the oracles) on these metrics, with a bootstrap interval
VERSUS_BASELINE_METRICS = ("roc_auc", "pr_auc")
# the bounds of generated data (simulator/oracle.py): scored beside the baselines, never a baseline
ORACLES = ("oracle", "oracle_events")


@dataclass
class TrainingResult:
    """The fitted model, its metrics and the baselines', and the validation predictions by name."""

    model: ChurnModel
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    predictions: pd.DataFrame  # validation: y and one column of P(churn) per scorer
    sizes: dict[str, int] = field(default_factory=dict)
    # metric -> {"baseline": name, "diff", "low", "high"}: model minus the best baseline on that metric
    versus_baseline: dict[str, dict] = field(default_factory=dict)
    # the evaluated model refitted on the training and validation snapshots with its tree count (None: not refitted)
    refit: ChurnModel | None = None
    # the churn-time curve that is served (P(no activity within 30/60/90/180 days), days to the next one) and the
    # validation metrics of the evaluated curve (see `fit_curve`), which is kept beside it
    curve: AftCurve | None = None
    curve_metrics: dict = field(default_factory=dict)
    evaluated_curve: AftCurve | None = None

    @property
    def registered(self) -> ChurnModel:
        """The model to register: the refit when there is one, else the evaluated model."""
        return self.refit if self.refit is not None else self.model


MAX_TRAIN_ROWS = 1_000_000  # training rows above this are sampled by customer (time and memory)
ADVICE = "use a longer history, another horizon or another as-of"


def check_labels(train: pd.DataFrame, validation: pd.DataFrame) -> None:
    """Raise UntrainableSnapshots unless the training snapshots and the validation snapshot each hold both classes."""
    for frame, what, consequence in (
            (train, "the training snapshots", "cannot train a classifier"),
            (validation, "the validation snapshot", "ROC-AUC and the promotion rule are undefined")):
        cutoffs = ""
        if "cutoff" in frame.columns and len(frame):
            cutoffs = " (cutoffs " + ", ".join(sorted({str(pd.Timestamp(c).date()) for c in frame["cutoff"]})) + ")"
        if frame.empty:
            raise UntrainableSnapshots(f"{what}{cutoffs} hold no customers: {consequence}; {ADVICE}")
        churned = int(frame["churned"].astype(bool).sum())
        if churned in (0, len(frame)):
            who = "every customer" if churned else "no customer"
            raise UntrainableSnapshots(f"{who} in {what}{cutoffs} churned ({len(frame):,} rows): {consequence}; "
                                       f"{ADVICE}")


def cap_rows(frame: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    """At most `max_rows` rows, sampled by customer (all snapshots of a sampled customer are kept), deterministic."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    h = pd.util.hash_array(frame["customer_id"].to_numpy(dtype=object)) % 1_000_000
    return frame[h < 1_000_000 * max_rows / len(frame)]


@dataclass
class Fitted:
    """The churn model and the label-fitted baselines, fitted on the training snapshots (by pandas or by Spark)."""

    model: ChurnModel
    baselines: dict  # name -> a fitted baseline with churn_probability(frame)
    never_buyer_rate: float  # the churn rate in training of customers who never bought (the BTYD models' fallback)
    sizes: dict[str, int]


def fit_on_driver(train: pd.DataFrame, features: list[str], *, seed: int, horizon_days: int,
                  model_params: dict | None = None, max_train_rows: int | None = MAX_TRAIN_ROWS) -> Fitted:
    """The model, early-stopping on a customer-level hold-out of the training snapshots (never on the validation
    snapshot, whose metrics would then be optimistic), and the recency rule and logistic RFM, in this process.
    Training rows above `max_train_rows` are sampled by customer to bound time and memory."""
    train = cap_rows(train, max_train_rows)
    es = early_stopping_mask(pd.Index(train["customer_id"]))
    X, y = train[features], train["churned"]
    model = ChurnModel(features, seed=seed, **(model_params or {})).fit(X[~es], y[~es], X[es], y[es])
    log.info("XGBoost: %d trees kept by early stopping", model.best_iteration_ + 1)
    # the baselines read their own columns of the snapshots, whatever feature set the model is given
    baselines = {f"recency_rule_{horizon_days}d": RecencyRule(horizon_days).fit(train, y),
                 "logistic_rfm": LogisticRFM(seed).fit(train, y)}
    never = train[FREQUENCY].isna().to_numpy()
    return Fitted(model, baselines, float(y[never].mean()) if never.any() else 1.0,
                  {"train_rows": int((~es).sum()), "early_stopping_rows": int(es.sum())})


def train_and_evaluate(train: pd.DataFrame, validation: pd.DataFrame, features: list[str], *, seed: int,
                       horizon_days: int, btyd: bool, bootstrap: Bootstrap | None, btyd_sample: int | None = None,
                       oracles: dict[str, pd.Series] | None = None, model_params: dict | None = None,
                       max_train_rows: int | None = MAX_TRAIN_ROWS) -> TrainingResult:
    """`train`/`validation`: feature rows with a `churned` label column and a `customer_id` column; the model and
    the baselines fitted in this process (`fit_on_driver`), then `evaluate`d."""
    check_labels(train, validation)
    fitted = fit_on_driver(train, features, seed=seed, horizon_days=horizon_days, model_params=model_params,
                           max_train_rows=max_train_rows)
    return evaluate(fitted, validation, seed=seed, horizon_days=horizon_days, btyd=btyd, bootstrap=bootstrap,
                    btyd_sample=btyd_sample, oracles=oracles)


def evaluate(fitted: Fitted, validation: pd.DataFrame, *, seed: int, horizon_days: int, btyd: bool,
             bootstrap: Bootstrap | None, btyd_sample: int | None = None,
             oracles: dict[str, pd.Series] | None = None) -> TrainingResult:
    """The fitted model and baselines scored on the validation snapshot (never sampled), beside them the BTYD models
    (with `btyd`: BG/NBD and Pareto/NBD fitted on the validation cutoff's own purchase histories, at most
    `btyd_sample` buyers, no labels) and the oracles of generated data; the model against the best baseline."""
    model = fitted.model
    yv = validation["churned"].to_numpy()
    preds = pd.DataFrame({"customer_id": validation["customer_id"].to_numpy(), "y": yv,
                          "model": model.churn_probability(validation[model.features]).to_numpy()})
    for name, b in fitted.baselines.items():
        preds[name] = b.churn_probability(validation).to_numpy()
    if btyd:
        log.info("fitting BG/NBD and Pareto/NBD (MAP) on up to %s buyers", f"{btyd_sample:,}" if btyd_sample else "all")
        history = validation.set_index("customer_id")  # the fit sample is drawn by customer id
        for name, cls in (("bg_nbd", BGNBD), ("pareto_nbd", ParetoNBD)):
            b = cls(horizon_days, fitted.never_buyer_rate, sample_customers=btyd_sample, seed=seed).fit(history)
            preds[name] = b.churn_probability(history).to_numpy()
    for name, oracle in (oracles or {}).items():  # generated data: the bounds, by name (ORACLES)
        preds[name] = oracle.reindex(validation["customer_id"]).to_numpy()
    scorers = [c for c in preds.columns if c not in ("customer_id", "y")]
    scored = {name: metrics(yv[preds[name].notna().to_numpy()], preds[name].dropna().to_numpy()) for name in scorers}
    model_metrics = scored.pop("model")
    if bootstrap is not None:
        log.info("paired bootstrap of model minus best baseline (%s resamples)", f"{bootstrap.n_resamples:,}")
    versus = versus_best_baseline(preds, scored, bootstrap) if bootstrap is not None else {}
    return TrainingResult(model=model, metrics=model_metrics, baselines=scored, predictions=preds,
                          sizes={**fitted.sizes, "validation_rows": len(validation)}, versus_baseline=versus)


def refit_on_all_labelled(model: ChurnModel, train: pd.DataFrame, validation: pd.DataFrame,
                          max_train_rows: int | None = MAX_TRAIN_ROWS) -> ChurnModel:
    """`model` refitted on the training snapshots (early-stopping hold-out included) plus the validation snapshot,
    the latest fully labelled one, with the tree count its early stopping chose (nothing is chosen on this data)."""
    stacked = cap_rows(pd.concat([train, validation], ignore_index=True), max_train_rows)
    return model.refit(stacked[model.features], stacked["churned"])


def fit_curve(train: pd.DataFrame, validation: pd.DataFrame, features: list[str], *, seed: int, horizon_days: int,
              max_train_rows: int | None = MAX_TRAIN_ROWS) -> tuple[AftCurve, AftCurve, dict]:
    """The churn-time curve model (XGBoost survival:aft on the interval-censored days to the next activity; see
    models/curve.py): (served, evaluated, the evaluated curve's validation metrics).

    The evaluated curve is fitted on the training snapshots with every wait as it was known at the validation
    cutoff (`censored_at`: a purchase in the validation window is unseen, as the churn model's labels never read
    it), early-stopping on the same customer-level hold-out as the churn model; its metrics are on the validation
    snapshot at the horizons that snapshot observes in full (those up to `horizon_days`; none if the horizon is
    shorter than the first). The served curve is refitted with the evaluated curve's tree count on the training
    and validation snapshots, every wait known up to the run's as-of (nothing chosen on the validation window)."""
    limit = pd.Timestamp(validation["cutoff"].max())
    evaluated = AftCurve(features, seed=seed).fit(censored_at(cap_rows(train, max_train_rows), limit))
    served = AftCurve(features, seed=seed).fit(cap_rows(pd.concat([train, validation], ignore_index=True),
                                                        max_train_rows), rounds=evaluated.best_iteration_ + 1)
    known = tuple(h for h in CURVE_HORIZONS if h <= horizon_days)
    if not known:
        return served, evaluated, {}
    return served, evaluated, curve_metrics(evaluated.curve(validation)[curve_columns(known)],
                                            horizon_labels(validation, known), known)


def versus_best_baseline(preds: pd.DataFrame, baselines: dict[str, dict[str, float]],
                         bootstrap: Bootstrap) -> dict[str, dict]:
    """Per metric: the best baseline (never an oracle) and model minus it, with its paired bootstrap interval."""
    out = {}
    for m in VERSUS_BASELINE_METRICS:
        name = max((b for b in baselines if b not in ORACLES), key=lambda b: baselines[b][m])
        iv = bootstrap.difference(preds["y"].to_numpy(), preds["model"].to_numpy(), preds[name].to_numpy(), (m,))[m]
        out[m] = {"baseline": name, **iv.as_dict(), "confidence": iv.confidence, "n_resamples": iv.n_resamples}
    return out
