"""The README's quality tables: every experiment of issue #13 on the generated data and the two real logs.

`scripts/quality-tables` runs it: each data set is ingested into its own folder under `--work` (kept and
reused on the next run), every experiment trains there with its settings (the same functions as `churn
train`, without MLflow), and the Markdown between `<!-- quality:begin -->` and `<!-- quality:end -->` in
the README is replaced by the tables. Every experiment is evaluated on the same validation snapshot of a
data set (the validation cutoff depends only on as-of and horizon), so the rows of a table compare.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.definitions import FEATURE_NAMES

BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"
SHARED_DATA = Path("/work/shared/data")
SCORERS = {"model": "model (XGBoost)", "logistic_rfm": "logistic RFM", "bg_nbd": "BG/NBD",
           "pareto_nbd": "Pareto/NBD", "oracle_events": "oracle, events only", "oracle": "oracle, knows the state",
           "evaluated": "not refitted"}
COLUMNS = ("roc_auc", "pr_auc", "brier", "calibration_error")

log = logging.getLogger("churn.quality")


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str
    ingest: tuple[tuple[str, ...], ...]  # churn sub-commands (without --home) that fill the data folder
    horizon_days: int
    as_of: str | None = None


@dataclass(frozen=True)
class Experiment:
    name: str
    meaning: str
    overrides: dict = field(default_factory=dict)  # settings against the reference row
    backtest_refit: bool = False
    btyd_features: bool = False
    blend: bool = False
    stack: bool = False
    aft: str = ""  # "blend": (model + the curve's P at the horizon) / 2; "alone": the curve's P; "stack": a stack input
    tune: bool = False
    rate_features: bool = False
    monotone: bool = False
    from_logistic: bool = False  # XGBoost boosted from logistic RFM's logit (a base margin)
    stack_cv: bool = False  # the stack of model, logistic RFM and curve, weights fitted on out-of-fold predictions
    matched_history: bool = False  # every snapshot's model features from the same number of days of history
    cadence: bool = False  # CADENCE_FEATURES (the customer's own purchase gaps against the current lapse) as inputs
    observed_history: bool = False  # the model's features made comparable across cutoffs seeing more or less history
    against: str = "reference"  # the row the decision compares with
    # declared with the experiment: a data set where it changes nothing (the same metrics as `against`, by
    # construction) is neutral, not a failure
    neutral_when_identical: bool = False
    note: str = ""  # said after the decision (e.g. that a kept change is not served yet)


# the settings before issue #13 part 2: four cutoffs, no refit, the customer features only (no season inputs)
REFERENCE = {"n_train_cutoffs": 4, "cutoff_step_days": 30, "refit": False, "model": {"features": list(FEATURE_NAMES)}}

EXPERIMENTS = (
    Experiment("reference", "4 training cutoffs 30 days apart (the settings before this round)", {}),
    Experiment("all-monthly", "every training cutoff the history allows, 30 days apart", {"n_train_cutoffs": 0}),
    Experiment("all-weekly", "every training cutoff the history allows, 7 days apart",
               {"n_train_cutoffs": 0, "cutoff_step_days": 7}),
    Experiment("refit", "refit on training + validation snapshots with the chosen tree count; backtest: trained "
               "one horizon earlier, evaluated on this validation snapshot, against the same model not refitted",
               {}, backtest_refit=True),
    Experiment("btyd-features", "the point-in-time BG/NBD outputs (P(alive), expected purchases in the horizon; "
               "fitted at each cutoff on that cutoff's history only) as two more model inputs", {}, btyd_features=True),
    Experiment("blend", "a blended challenger: the mean of the model's and logistic RFM's P(churn) (weights fixed "
               "in advance, not fitted on the validation snapshot)", {}, blend=True),
    Experiment("stack", "a stacked challenger: a logistic regression on the logits of the model's and logistic RFM's "
               "P(churn), fitted on the early-stopping hold-out customers of the training snapshots (both models "
               "fitted without them; never the validation snapshot)", {}, stack=True),
    Experiment("aft-alone", "the churn-time curve's P(no purchase within the horizon) as the churn score: XGBoost "
               "survival:aft on the days to the next purchase (interval censored), same training snapshots", {},
               aft="alone"),
    Experiment("aft-blend", "a blended challenger: the mean of the model's P(churn) and the churn-time curve's "
               "P(no purchase within the horizon) (weights fixed in advance)", {}, aft="blend"),
    Experiment("stack-aft", "the stacked challenger with a third input: the churn-time curve's P(no purchase within "
               "the horizon) (a logistic regression on the three logits, fitted on the early-stopping hold-out "
               "customers of the training snapshots)", {}, stack=True, aft="stack"),
    Experiment("tuned", "XGBoost depth and minimum child weight chosen by time-ordered validation on the training "
               "cutoffs (fit on the older ones, log loss on the latest; 8 settings), then trained as usual", {},
               tune=True),
    Experiment("rate-features", "four more inputs, each a recent count or a time since the last event against the "
               "customer's own yearly rate (visits and events missed at their own pace, visits in 30 days and "
               "purchases in 90 days as a share of their own yearly pace)", {}, rate_features=True),
    Experiment("monotone", "XGBoost with monotone constraints from domain knowledge (not from data): churn may only "
               "rise with the days since the last event, purchase and visit and the overdue ratio, and only fall with "
               "the purchase, visit and spend counts of 30/90/365 days and all purchases", {}, monotone=True),
    Experiment("stack-aft-monotone", "`stack-aft` with the monotone model as its first input", {}, monotone=True,
               stack=True, aft="stack"),
    Experiment("boost-from-logistic", "XGBoost boosted from logistic RFM: the logistic regression's logit (fitted on "
               "the same training rows without the early-stopping hold-out) is the trees' base margin, so they learn a "
               "correction to it; same early stopping", {}, from_logistic=True),
    Experiment("stack-cv", "`stack-aft` cross-fitted: 5 customer folds of the training snapshots; XGBoost and the "
               "curve (tree counts fixed to the main fits') and logistic RFM fitted on four predict the fifth; the "
               "logistic regression on the three logits is fitted on every training row's out-of-fold logits", {},
               stack_cv=True),
    Experiment("matched-history", "when the earliest training cutoff sees H days of history, fewer than the "
               "lookback, the model's features at every cutoff (training and validation) are computed from the last H "
               "days of events only (same customers; one with no event in them: zero counts, empty days and ratios); "
               "the baselines keep the full history", {}, matched_history=True, neutral_when_identical=True),
    Experiment("matched-history-stack-cv", "`matched-history` with `stack-cv` on top", {}, matched_history=True,
               stack_cv=True, neutral_when_identical=True),
    Experiment("all-monthly-season", "`all-monthly` plus the cutoff's position in the year (sin and cos of its day "
               "of the year) as two model inputs when the training cutoffs span 365 days or more (elsewhere identical "
               "to `all-monthly`); judged against `all-monthly`", {"n_train_cutoffs": 0, "model": {}},
               against="all-monthly", neutral_when_identical=True,
               note="served: in the default feature set (`features/season.py`)"),
    Experiment("cadence", "four more inputs from the customer's own purchase gaps at each cutoff: the longest gap, "
               "the days since the last purchase over the longest gap, the share of past gaps shorter than the days "
               "since the last purchase, the latest gap over the mean gap (the model and the curve)", {}, cadence=True),
    Experiment("cadence-stack-cv", "`stack-cv` over the model and curve with the `cadence` inputs", {}, cadence=True,
               stack_cv=True),
    Experiment("observed-history", "the model's and curve's features made comparable across cutoffs that see "
               "different lengths of history H (days since the store's first event): w-day counts and spend scaled "
               "by w / H when H < w, the trends' previous 90 days by 90 / (H - 90), tenure as a share of H, purchases "
               "since the first event per 365 days of H", {}, observed_history=True),
    Experiment("observed-history-stack-cv", "`stack-cv` over the model and curve with the `observed-history` "
               "features", {}, observed_history=True, stack_cv=True),
)

# Directions known before looking at any data: +1 churn only rises with the feature, -1 only falls.
MONOTONE = {**{f: 1 for f in ("days_since_last_event", "days_since_last_purchase", "days_since_last_visit",
                              "overdue_ratio")},
            **{f"{kind}_{days}d": -1 for kind in ("purchases", "visits", "spend") for days in (30, 90, 365)},
            "purchases_total": -1}


def datasets(data: Path) -> tuple[DataSet, ...]:
    retail = str(data / "online_retail_II_2009_2010.parquet")
    journey = str(data / "complete_journey_transactions_2017.parquet")
    mapping = str(Path(__file__).resolve().parent.parent / "examples" / "complete-journey.mapping.toml")
    return (
        DataSet("demo", "Generated (`churn generate` defaults: 20,000 customers, 730 days, seed 42), 90-day horizon",
                (("generate",), ("ingest",)), 90),
        DataSet("online-retail", "UCI Online Retail 2009-2010, 90-day horizon",
                (("ingest", "--format", "online-retail", "--timezone", "Europe/London", retail),), 90),
        DataSet("complete-journey", "Complete Journey grocery year (2017), 90-day horizon",
                (("ingest", "--mapping", mapping, journey),), 90),
        DataSet("complete-journey-4m", "Complete Journey, first four months only (as of 2017-05-01), 30-day horizon",
                (("ingest", "--mapping", mapping, journey),), 30, "2017-05-01"),
    )


def data_home(work: Path, ds: DataSet) -> Path:
    """The data folder of `ds` under `work` (the four-month run reads the full year's store up to its as-of)."""
    return work / ds.name.removesuffix("-4m")


def ingested(home: Path) -> Path:
    """The marker that says `home` was filled completely (it exists once it was)."""
    return home / ".quality-ready"


def ingest(ds: DataSet, home: Path, churn: str) -> None:
    """Fill `home` once (the `ingested` marker says it is complete)."""
    marker = ingested(home)
    if marker.exists():
        return
    for args in ds.ingest:
        subprocess.run([churn, *args, "--home", str(home)], check=True, stdout=subprocess.DEVNULL, cwd=home.parent)
    marker.write_text("ok\n")


def run_experiment(ds: DataSet, ex: Experiment, home: Path, resamples: int) -> dict:
    """The scorers' metrics on the data set's validation snapshot under the experiment's settings."""
    from churn.settings import defaults, utc
    from flows.train import build_snapshots, train

    config = defaults(home, **{**REFERENCE, **ex.overrides, "bootstrap_resamples": resamples}).train_config(
        horizon_days=ds.horizon_days)
    as_of = utc(ds.as_of) if ds.as_of else None
    started = time.monotonic()
    if not ex.backtest_refit:
        plan, info = build_snapshots(config, as_of)
        if ex.tune:
            config = config.model_copy(update={"model_params": {**config.model_params, **tuned_params(config, info)}})
        if ex.monotone:
            constraints = {f: d for f, d in MONOTONE.items() if f in config.features}
            config = config.model_copy(update={"model_params": {**config.model_params,
                                                                "monotone_constraints": constraints}})
        result = (train_with_btyd_features(config, info) if ex.btyd_features else
                  train_with_rate_features(config, info) if ex.rate_features else
                  train_with_matched_history(config, info) if ex.matched_history else
                  train_with_cadence(config, info) if ex.cadence else
                  train_with_observed_history(config, info) if ex.observed_history else train(config, info)[0])
        if ex.from_logistic:
            result = boosted_from_logistic(result, config, info)
        if ex.stack_cv:
            result = stacked_cv(result, config, info)
        if ex.blend:
            result = blended(result, config.bootstrap())
        if ex.stack:
            result = stacked(result, config, info, with_aft=ex.aft == "stack")
        if ex.aft in ("alone", "blend"):
            result = with_aft(result, config, info, ex.aft)
        preds = result.predictions
        if "oracle_events" in preds:  # how far from what a model seeing only events could reach at best
            iv = config.bootstrap().difference(preds["y"].to_numpy(), preds["model"].to_numpy(),
                                               preds["oracle_events"].to_numpy(), ("roc_auc",))["roc_auc"]
            versus_oracle = {"baseline": "oracle_events", **iv.as_dict()}
        snapshots = _snapshots(info)
        rates = snapshots[snapshots["split"] == "train"].groupby("cutoff")["churned"].mean()
        out = {"versus_oracle_events": versus_oracle if "oracle_events" in preds else None,
               "train_churn_rates": [float(v) for v in rates.sort_index()],
               "mean_predicted": {k: float(preds[k].mean()) for k in ("model", "logistic_rfm") if k in preds},
               "validation_cutoff": info["validation_cutoff"], "train_cutoffs": len(plan.train),
               "train_rows": result.sizes["train_rows"] + result.sizes["early_stopping_rows"],
               "scorers": {"model": result.metrics, **result.baselines}, "versus": result.versus_baseline,
               "trees": result.model.best_iteration_ + 1}
    else:
        out = backtest_refit(config, as_of)
    out["seconds"] = round(time.monotonic() - started, 1)
    out["scorers"] = {k: {c: v[c] for c in (*COLUMNS, "base_rate", "n")} for k, v in out["scorers"].items()
                      if k in SCORERS}
    return out


def _snapshots(info: dict):
    """The run's stored snapshots, or the frame an experiment replaced them with (`info["frame"]`)."""
    from storage import catalog

    frame = info.get("frame")
    return catalog.read_snapshots(Path(info["path"])) if frame is None else frame


def _replace_model_scores(result, p, bootstrap, model=None):
    """The training result with the model's validation P(churn) replaced by `p` (and its model, for the tree count),
    metrics and intervals against the best baseline recomputed."""
    import dataclasses

    from models.evaluate import metrics
    from models.train import versus_best_baseline

    preds = result.predictions.assign(model=p)
    return dataclasses.replace(result, predictions=preds, metrics=metrics(preds["y"], preds["model"]),
                               versus_baseline=versus_best_baseline(preds, result.baselines, bootstrap),
                               model=model if model is not None else result.model)


def blended(result, bootstrap):
    """The training result with the model's predictions replaced by the mean of the model's and logistic RFM's, its
    metrics and its intervals against the best baseline recomputed."""
    preds = result.predictions
    return _replace_model_scores(result, (preds["model"] + preds["logistic_rfm"]) / 2, bootstrap)


def with_aft(result, config, info: dict, how: str):
    """The training result with the model's predictions replaced by the churn-time curve's P(no activity within the
    horizon) (`alone`) or by the mean of that and the model's (`blend`); metrics and intervals recomputed."""
    frame = _snapshots(info)
    validation = frame[frame["split"] == "validation"].set_index("customer_id")
    p = result.evaluated_curve.no_activity_within(validation, config.horizon_days)
    p = p.reindex(result.predictions["customer_id"]).to_numpy()
    return _replace_model_scores(result, p if how == "alone" else (result.predictions["model"].to_numpy() + p) / 2,
                                 config.bootstrap())


def _logit(p):
    import numpy as np

    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def stacked(result, config, info: dict, with_aft: bool = False):
    """The training result with the model's predictions replaced by a logistic stack of the model's and logistic
    RFM's logits (`with_aft`: and the churn-time curve's P(no purchase within the horizon)), fitted on the
    early-stopping hold-out of the training snapshots (which no model was fitted on)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from models.baselines import LogisticRFM
    from models.churn_model import early_stopping_mask
    from models.train import cap_rows

    frame = _snapshots(info)
    train = cap_rows(frame[frame["split"] == "train"], 1_000_000)
    es = early_stopping_mask(__import__("pandas").Index(train["customer_id"]))
    held = train[es]
    lr = LogisticRFM(config.seed).fit(train[~es], train.loc[~es, "churned"])
    Z = [_logit(result.model.churn_probability(held[result.model.features])), _logit(lr.churn_probability(held))]
    preds = result.predictions
    Zv = [_logit(preds["model"]), _logit(preds["logistic_rfm"])]
    if with_aft:
        validation = frame[frame["split"] == "validation"].set_index("customer_id")
        Z.append(_logit(result.evaluated_curve.no_activity_within(held, config.horizon_days)))
        Zv.append(_logit(result.evaluated_curve.no_activity_within(validation, config.horizon_days)
                         .reindex(preds["customer_id"]).to_numpy()))
    Z, Zv = np.column_stack(Z), np.column_stack(Zv)
    stack = LogisticRegression(C=1.0).fit(Z, held["churned"].to_numpy())
    log.info("stack weights %s, intercept %.3f", np.round(stack.coef_[0], 3).tolist(), stack.intercept_[0])
    return _replace_model_scores(result, stack.predict_proba(Zv)[:, 1], config.bootstrap())


def boosted_from_logistic(result, config, info: dict):
    """XGBoost fitted with logistic RFM's logit as its base margin (logistic RFM fitted on the training rows without
    the early-stopping hold-out; the hold-out scored with its own base margin), scored on the validation snapshot."""
    import pandas as pd
    from xgboost import XGBClassifier

    from models.baselines import LogisticRFM
    from models.churn_model import DEFAULT_PARAMS, ChurnModel, early_stopping_mask
    from models.train import MAX_TRAIN_ROWS, cap_rows

    frame = _snapshots(info)
    train = cap_rows(frame[frame["split"] == "train"], MAX_TRAIN_ROWS)
    validation = frame[frame["split"] == "validation"].set_index("customer_id").loc[result.predictions["customer_id"]]
    es = early_stopping_mask(pd.Index(train["customer_id"]))
    features = list(config.features)
    lr = LogisticRFM(config.seed).fit(train[~es], train.loc[~es, "churned"])
    margin = _logit(lr.churn_probability(train))
    params = {**DEFAULT_PARAMS, **config.model_params}
    xgb = XGBClassifier(objective="binary:logistic", eval_metric="logloss", random_state=config.seed, n_jobs=2,
                        **params)
    X = train[features].astype("float64")
    xgb.fit(X[~es], train.loc[~es, "churned"].to_numpy(), base_margin=margin[~es],
            eval_set=[(X[es], train.loc[es, "churned"].to_numpy())], base_margin_eval_set=[margin[es]], verbose=False)
    best = int(xgb.best_iteration)
    log.info("boosted from logistic RFM: %d trees", best + 1)
    p = xgb.predict_proba(validation[features].astype("float64"),
                          base_margin=_logit(lr.churn_probability(validation)), iteration_range=(0, best + 1))[:, 1]
    return _replace_model_scores(result, p, config.bootstrap(),
                                 ChurnModel.from_booster(xgb.get_booster(), features, best_iteration=best))


STACK_FOLDS = 5


def stacked_cv(result, config, info: dict):
    """`stacked(..., with_aft=True)` with the stacking weights fitted on out-of-fold logits of every training row:
    STACK_FOLDS customer-grouped folds; per fold, the model and the curve refitted with the main fits' tree counts and
    logistic RFM fitted on the other folds. The validation logits are the main fits' (as in `stacked`)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from models.baselines import LogisticRFM
    from models.curve import AftCurve, censored_at
    from models.train import MAX_TRAIN_ROWS, cap_rows

    frame = _snapshots(info)
    train = cap_rows(frame[frame["split"] == "train"], MAX_TRAIN_ROWS)
    limit = pd.Timestamp(frame.loc[frame["split"] == "validation", "cutoff"].max())  # the curve's waits as then known
    features, h = list(result.model.features), config.horizon_days
    y = train["churned"].to_numpy()
    fold = (pd.util.hash_array(train["customer_id"].to_numpy(dtype=object)) // 10_000) % STACK_FOLDS
    oof = np.zeros((len(train), 3))
    for k in range(STACK_FOLDS):
        inner, out = train[fold != k], train[fold == k]
        model = result.model.refit(inner[features], inner["churned"])
        lr = LogisticRFM(config.seed).fit(inner, inner["churned"])
        curve = AftCurve(result.evaluated_curve.features, seed=config.seed).fit(
            censored_at(inner, limit), rounds=result.evaluated_curve.best_iteration_ + 1)
        oof[fold == k] = np.column_stack([_logit(model.churn_probability(out[features])),
                                          _logit(lr.churn_probability(out)),
                                          _logit(curve.no_activity_within(out, h))])
    stack = LogisticRegression(C=1.0).fit(oof, y)
    log.info("cross-fitted stack weights %s, intercept %.3f", np.round(stack.coef_[0], 3).tolist(),
             stack.intercept_[0])
    preds = result.predictions
    validation = frame[frame["split"] == "validation"].set_index("customer_id")
    Zv = np.column_stack([_logit(preds["model"]), _logit(preds["logistic_rfm"]),
                          _logit(result.evaluated_curve.no_activity_within(validation, h)
                                 .reindex(preds["customer_id"]))])
    return _replace_model_scores(result, stack.predict_proba(Zv)[:, 1], config.bootstrap())


MATCHED = "w_"  # prefix of the model's features computed from the matched history (the baselines keep the originals)


def matched_history_frame(config, info: dict):
    """The stored snapshots with MATCHED + feature columns: each cutoff's features from only the last H days of events
    before it, H the history at the earliest training cutoff (when that is shorter than the lookback; else the
    originals). Same rows; a customer with no event in those days: zero counts and spend, the rest empty."""
    import pandas as pd

    from features.customer import FEATURE_NAMES, FEATURES, customer_features
    from storage import catalog

    frame = catalog.read_snapshots(Path(info["path"]))
    first = pd.Timestamp(info["data_start"])
    earliest = pd.Timestamp(frame.loc[frame["split"] == "train", "cutoff"].min())
    days = int((earliest - first) / pd.Timedelta(days=1))
    log.info("matched history: %d days at the earliest training cutoff (lookback %d)", days, config.lookback_days)
    if days >= config.lookback_days:
        return frame.assign(**{MATCHED + f: frame[f] for f in FEATURE_NAMES})
    zero = [f for f in FEATURE_NAMES if FEATURES[f][1] in ("count", "currency") and f != "avg_basket_365d"]

    def matched(events, cutoff, rows):
        since = (cutoff - pd.Timedelta(days=days)).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
        window = events.filter(f"event_time > TIMESTAMPTZ '{since}+00'")
        feats = customer_features(window, cutoff, days).reindex(rows["customer_id"].astype(str))
        feats[zero] = feats[zero].fillna(0.0)
        return {MATCHED + f: feats[f].to_numpy() for f in FEATURE_NAMES}

    return _with_columns_per_cutoff(config, info, frame, matched)


def _with_columns_per_cutoff(config, info: dict, frame, columns):
    """`frame` (stacked snapshots) with the columns `columns(events, cutoff, rows)` returns for each cutoff's rows,
    computed over the run's version of the event store (a DuckDB relation)."""
    import pandas as pd

    from storage import layout, store

    paths = layout.Paths(config.home)
    con = store.connect(paths)
    parts = []
    try:
        events = store.events_relation(con, paths, version=info.get("store_version"))
        for cutoff, rows in frame.groupby("cutoff", sort=False):
            parts.append(rows.assign(**columns(events, pd.Timestamp(cutoff), rows)))
    finally:
        con.close()
    return pd.concat(parts).loc[frame.index]


def _train_model_and_curve(config, info: dict, frame, features: list[str]):
    """`flows.train.train` on `frame` (the stored snapshots with more columns) with `features` as the inputs of the
    model and of its churn-time curve; the baselines read their own columns."""
    from models.train import fit_curve, train_and_evaluate

    info["frame"] = frame
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    result = train_and_evaluate(train, validation, features, seed=config.seed, horizon_days=config.horizon_days,
                                btyd=config.btyd_baselines, btyd_sample=config.btyd_sample_customers,
                                bootstrap=config.bootstrap(), oracles=_oracles(config, info, validation))
    result.curve, result.evaluated_curve, _ = fit_curve(train, validation, features, seed=config.seed,
                                                        horizon_days=config.horizon_days)
    return result


def train_with_matched_history(config, info: dict):
    """`flows.train.train` with the model (and its churn-time curve) on `matched_history_frame`'s features; the
    baselines on the originals."""
    from features.customer import FEATURE_NAMES

    return _train_model_and_curve(config, info, matched_history_frame(config, info),
                                  [MATCHED + f for f in FEATURE_NAMES])


CADENCE_FEATURES = ("purchase_gap_max_days", "recency_over_max_gap", "gaps_shorter_share", "last_gap_over_mean")


def cadence_sql(as_of) -> str:
    """CADENCE_FEATURES per customer with 2+ purchases at or before `as_of`, over a table `events` (DuckDB)."""
    from features.definitions import DAY_US
    from features.sql import timestamp

    asof = timestamp(as_of)
    return f"""
WITH p AS (
    SELECT customer_id, epoch_us({asof}) - epoch_us(event_time) AS age_us
    FROM events WHERE event_time <= {asof} AND event_type = 'purchase'
), g AS (
    SELECT customer_id, age_us, min(age_us) OVER (PARTITION BY customer_id) AS last_age,
           lag(age_us) OVER (PARTITION BY customer_id ORDER BY age_us DESC) - age_us AS gap
    FROM p
)
SELECT customer_id,
    CAST(max(gap) AS DOUBLE) / {DAY_US} AS purchase_gap_max_days,
    CASE WHEN max(gap) > 0 THEN CAST(min(last_age) AS DOUBLE) / max(gap) END AS recency_over_max_gap,
    CAST(count(gap) FILTER (WHERE gap < last_age) AS DOUBLE) / count(gap) AS gaps_shorter_share,
    CASE WHEN count(gap) >= 2 AND avg(gap) > 0
         THEN CAST(max(gap) FILTER (WHERE age_us = last_age) AS DOUBLE) / avg(gap) END AS last_gap_over_mean
FROM g WHERE gap IS NOT NULL GROUP BY customer_id"""


def cadence_frame(config, info: dict):
    """The stored snapshots with CADENCE_FEATURES, each cutoff's from the events at or before it (NaN with fewer
    than two purchases)."""
    from storage import catalog

    def cadence(events, cutoff, rows):
        found = events.query("events", cadence_sql(cutoff)).df()
        feats = found.set_index(found["customer_id"].astype(str)).reindex(rows["customer_id"].astype(str))
        return {f: feats[f].to_numpy(dtype="float64") for f in CADENCE_FEATURES}

    return _with_columns_per_cutoff(config, info, catalog.read_snapshots(Path(info["path"])), cadence)


def train_with_cadence(config, info: dict):
    """`flows.train.train` with CADENCE_FEATURES added to every snapshot and to the model's and the curve's inputs."""
    from features.customer import FEATURE_NAMES

    return _train_model_and_curve(config, info, cadence_frame(config, info), [*FEATURE_NAMES, *CADENCE_FEATURES])


OBSERVED = "h_"  # prefix of the model's features made comparable across histories (the baselines keep the originals)


def with_observed_history(frame, data_start):
    """The snapshot rows with OBSERVED + feature columns: each cutoff's features as if every window were observed in
    full, H = days from the store's first event (`data_start`) to the cutoff. A w-day count or spend (w in the
    feature's name) is scaled by w / H when H < w; the 90-day trends' previous 90 days (recovered from the trend and
    the last 90 days) by 90 / (H - 90), empty when none of them is observed; `tenure_days` becomes a share of H;
    `purchases_total` a count per 365 days of H. Everything else is copied."""
    import re

    import numpy as np
    import pandas as pd

    from features.customer import FEATURE_NAMES, FEATURES

    h = ((pd.to_datetime(frame["cutoff"], utc=True) - pd.Timestamp(data_start)) / pd.Timedelta(days=1)).to_numpy()
    h = np.maximum(h, 1.0)
    out = {}
    for f in FEATURE_NAMES:
        window = re.search(r"_(\d+)d$", f)
        v = frame[f].to_numpy(dtype="float64")
        if window and FEATURES[f][1] in ("count", "currency") and f != "avg_basket_365d":
            w = float(window.group(1))
            v = v * np.where(h < w, w / h, 1.0)
        out[OBSERVED + f] = v
    previous_seen = np.clip(h - 90.0, 0.0, 90.0)
    for trend, last in (("purchase_trend_90d", "purchases_90d"), ("spend_trend_90d", "spend_90d"),
                        ("visit_trend_90d", "visits_90d")):
        t, a = frame[trend].to_numpy(dtype="float64"), frame[last].to_numpy(dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.where(t > -1.0, a * (1.0 - t) / (1.0 + t), np.nan)  # the previous 90 days (unknown when t = -1)
            b = b * np.where(previous_seen > 0, 90.0 / previous_seen, np.nan)
            scaled = np.where((a + b) > 0, (a - b) / (a + b), np.nan)
        # -1 (nothing in the last 90 days, something before) and +1 (nothing before) keep their sign whatever the scale
        out[OBSERVED + trend] = np.where(previous_seen > 0, np.where(np.isfinite(b), scaled, t), np.nan)
    out[OBSERVED + "tenure_days"] = frame["tenure_days"].to_numpy(dtype="float64") / h
    out[OBSERVED + "purchases_total"] = frame["purchases_total"].to_numpy(dtype="float64") * 365.0 / h
    return frame.assign(**out)


def train_with_observed_history(config, info: dict):
    """`flows.train.train` with the model (and its churn-time curve) on `with_observed_history`'s features; the
    baselines on the originals."""
    from features.customer import FEATURE_NAMES
    from storage import catalog

    frame = with_observed_history(catalog.read_snapshots(Path(info["path"])), info["data_start"])
    return _train_model_and_curve(config, info, frame, [OBSERVED + f for f in FEATURE_NAMES])


TUNING_GRID = tuple({"max_depth": d, "min_child_weight": w} for d in (2, 3, 4, 6) for w in (5.0, 50.0))


def tuned_params(config, info: dict) -> dict:
    """The grid point with the lowest log loss on the latest training cutoff, each fitted on the older training
    cutoffs (a customer-level split when there is one training cutoff); never the validation snapshot."""
    import pandas as pd
    from sklearn.metrics import log_loss

    from models.churn_model import ChurnModel, early_stopping_mask
    from storage import catalog

    frame = catalog.read_snapshots(Path(info["path"]))
    train = frame[frame["split"] == "train"]
    cutoffs = sorted(train["cutoff"].unique())
    if len(cutoffs) >= 2:
        inner, check = train[train["cutoff"] < cutoffs[-1]], train[train["cutoff"] == cutoffs[-1]]
    else:
        held = early_stopping_mask(pd.Index(train["customer_id"]), share=0.3)
        inner, check = train[~held], train[held]
    es = early_stopping_mask(pd.Index(inner["customer_id"]))
    features = list(config.features)
    losses = []
    for params in TUNING_GRID:
        m = ChurnModel(features, seed=config.seed, **{**config.model_params, **params}).fit(
            inner.loc[~es, features], inner.loc[~es, "churned"], inner.loc[es, features], inner.loc[es, "churned"])
        losses.append(log_loss(check["churned"].to_numpy(), m.churn_probability(check[features]).to_numpy()))
        log.info("tuning %s: log loss %.5f (%d trees)", params, losses[-1], m.best_iteration_ + 1)
    best = TUNING_GRID[min(range(len(losses)), key=losses.__getitem__)]
    log.info("tuning chose %s", best)
    return dict(best)


RATE_FEATURES = ("visits_missed", "events_missed", "visit_pace_30d", "purchase_pace_90d")


def with_rate_features(frame):
    """The snapshot rows with RATE_FEATURES: counts against the customer's own pace over the last year (or their
    tenure if shorter)."""
    import numpy as np

    years = frame["tenure_days"].clip(lower=30, upper=365) / 365.0
    visit_rate = frame["visits_365d"] / (365.0 * years)  # per day
    events = frame[["visits_365d", "purchases_365d", "returns_365d", "complaints_365d"]].sum(axis=1)
    event_rate = events / (365.0 * years)
    return frame.assign(
        visits_missed=frame["days_since_last_visit"] * visit_rate,
        events_missed=frame["days_since_last_event"] * event_rate,
        visit_pace_30d=np.where(visit_rate > 0, frame["visits_30d"] / (30.0 * visit_rate), np.nan),
        purchase_pace_90d=np.where(frame["purchases_365d"] > 0,
                                   frame["purchases_90d"] / (90.0 * frame["purchases_365d"] / (365.0 * years)), np.nan))


def train_with_rate_features(config, info: dict):
    """`flows.train.train` with RATE_FEATURES added to every snapshot and to the model's inputs."""
    from features.customer import FEATURE_NAMES
    from models.train import train_and_evaluate
    from storage import catalog

    frame = with_rate_features(catalog.read_snapshots(Path(info["path"])))
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    return train_and_evaluate(train, validation, [*FEATURE_NAMES, *RATE_FEATURES], seed=config.seed,
                              horizon_days=config.horizon_days, btyd=config.btyd_baselines,
                              btyd_sample=config.btyd_sample_customers, bootstrap=config.bootstrap(),
                              oracles=_oracles(config, info, validation))


def _oracles(config, info: dict, validation) -> dict:
    import pandas as pd

    from flows.train import generated_data_oracles
    from storage import layout

    return generated_data_oracles(layout.Paths(config.home), pd.Timestamp(info["validation_cutoff"], tz="UTC"),
                                  config.horizon_days, validation["customer_id"], info["n_events"])


def train_with_btyd_features(config, info: dict):
    """`flows.train.train` with the point-in-time BTYD outputs added to every snapshot and to the model's inputs."""
    from features.customer import FEATURE_NAMES
    from models.btyd import BTYD_FEATURES, with_point_in_time_features
    from models.train import train_and_evaluate
    from storage import catalog

    frame = catalog.read_snapshots(Path(info["path"]))
    frame = with_point_in_time_features(frame, config.horizon_days, config.btyd_sample_customers, config.seed)
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    return train_and_evaluate(train, validation, [*FEATURE_NAMES, *BTYD_FEATURES], seed=config.seed,
                              horizon_days=config.horizon_days, btyd=config.btyd_baselines,
                              btyd_sample=config.btyd_sample_customers, bootstrap=config.bootstrap(),
                              oracles=_oracles(config, info, validation))


def backtest_refit(config, as_of) -> dict:
    """Plan and train one horizon earlier; score the evaluated model and its refit on this run's validation snapshot
    (labels after everything either has seen), with the paired bootstrap of refit minus evaluated."""
    import pandas as pd

    from features.customer import FEATURE_NAMES
    from features.snapshots import labelled_snapshot
    from flows.train import build_snapshots, train
    from models.evaluate import metrics
    from models.snapshots import NotEnoughHistory
    from storage import layout, store

    paths = layout.Paths(config.home)
    first, last, _ = store.store_time_range(paths)
    as_of = as_of if as_of is not None else last
    h = pd.Timedelta(days=config.horizon_days)
    config = config.model_copy(update={"refit": True, "btyd_baselines": False})  # only the model is compared here
    try:
        plan, info = build_snapshots(config, as_of - h)
    except NotEnoughHistory as e:
        return {"unmeasured": str(e), "scorers": {}}
    result, _ = train(config, info)
    validation_cutoff = (as_of - h).floor("D")
    con = store.connect(paths)
    try:
        test = labelled_snapshot(store.events_relation(con, paths), validation_cutoff, config.horizon_days,
                                 config.lookback_days, config.activity_types)
    finally:
        con.close()
    y = test["churned"].to_numpy()
    p_eval = result.model.churn_probability(test[FEATURE_NAMES]).to_numpy()
    p_refit = result.refit.churn_probability(test[FEATURE_NAMES]).to_numpy()
    diff = config.bootstrap().difference(y, p_refit, p_eval, ("roc_auc", "pr_auc"))
    return {"validation_cutoff": validation_cutoff.date().isoformat(), "train_cutoffs": len(plan.train) + 1,
            "train_rows": result.refit.refit_rows_, "trees": result.model.best_iteration_ + 1,
            "scorers": {"model": metrics(y, p_refit), "evaluated": metrics(y, p_eval)},
            "versus": {m: {"baseline": "evaluated", **iv.as_dict()} for m, iv in diff.items()}}


ORIGINS, ORIGIN_STEP_DAYS = 4, 30  # validation origins, the latest the data set's own validation snapshot


def origins_experiment(ds: DataSet, home: Path, resamples: int) -> dict:
    """The reference settings trained anew at ORIGINS validation cutoffs ORIGIN_STEP_DAYS apart (as-of = origin +
    horizon: nothing after an origin's label window is read); each scorer's metrics per origin and their means, and
    the mean over origins of model minus the best baseline (by its mean) with customers drawn as blocks."""
    import numpy as np
    import pandas as pd

    from churn.settings import defaults, utc
    from flows.train import build_snapshots, train
    from models.bootstrap import mean_paired_difference
    from models.snapshots import NotEnoughHistory
    from models.train import ORACLES
    from storage import layout, store

    config = defaults(home, **{**REFERENCE, "bootstrap_resamples": resamples}).train_config(
        horizon_days=ds.horizon_days)
    latest = utc(ds.as_of) if ds.as_of else store.store_time_range(layout.Paths(home))[1]
    origins, predictions, unmeasured = [], [], []
    for k in range(ORIGINS):
        as_of = latest - pd.Timedelta(days=ORIGIN_STEP_DAYS * k)
        try:
            plan, info = build_snapshots(config, as_of)
        except NotEnoughHistory as e:
            unmeasured.append(str(e))
            continue
        result = train(config, info)[0]
        scorers = {"model": result.metrics, **{b: m for b, m in result.baselines.items() if b in SCORERS}}
        origins.append({"validation_cutoff": info["validation_cutoff"][:10], "n": int(len(result.predictions)),
                        "base_rate": float(result.predictions["y"].mean()), "train_cutoffs": len(plan.train),
                        "train_rows": int(result.sizes["train_rows"] + result.sizes["early_stopping_rows"]),
                        "scorers": {s: {c: float(m[c]) for c in COLUMNS} for s, m in scorers.items()}})
        predictions.append(result.predictions)
    out = {"origins": origins, "unmeasured": unmeasured}
    if not origins:
        return out
    names = list(origins[0]["scorers"])
    out["mean"] = {s: {c: float(np.mean([o["scorers"][s][c] for o in origins])) for c in COLUMNS} for s in names}
    customers = pd.Index(pd.unique(pd.concat([p["customer_id"] for p in predictions]).astype(str)))
    boot = config.bootstrap()
    out["versus"] = {}
    for m in ("roc_auc", "pr_auc"):
        best = max((s for s in names if s != "model" and s not in ORACLES), key=lambda s: out["mean"][s][m])
        samples = [(customers.get_indexer(p["customer_id"].astype(str)), p["y"].to_numpy(), p["model"].to_numpy(),
                    p[best].to_numpy()) for p in predictions]
        iv = mean_paired_difference(samples, len(customers), metrics=(m,), n_resamples=boot.n_resamples,
                                    confidence=boot.confidence, seed=boot.seed)[m]
        out["versus"][m] = {"baseline": best, **iv.as_dict()}
    return out


def origins_markdown(results: dict, sets: tuple[DataSet, ...]) -> list[str]:
    lines = [f"**Rolling origins** (a measurement beside the single snapshot above, never instead of it): the "
             f"reference settings trained anew at up to {ORIGINS} validation cutoffs {ORIGIN_STEP_DAYS} days apart, "
             f"the latest the snapshot above, each reading nothing after its own label window. Each scorer's metrics "
             f"averaged over the origins, and model minus the best baseline (by that average) averaged over them, "
             f"with a 95 % "
             f"bootstrap interval that draws customers as blocks (a customer's rows at every origin together: the "
             f"label windows overlap). An earlier origin has less history before it, so it may train on fewer "
             f"cutoffs and rows.", "",
             "| data set | origins: validation cutoff (churn rate; training cutoffs, rows) | scorer | ROC-AUC | "
             "PR-AUC | Brier | calibration error | model - best baseline, ROC-AUC | model - best baseline, PR-AUC |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ds in sets:
        o = results.get(ds.name, {}).get("origins")
        if not o:
            continue
        if not o["origins"]:
            lines.append(f"| {ds.name} | unmeasured: {o['unmeasured'][0]} | | | | | | | |")
            continue
        head = f"{len(o['origins'])}: " + ", ".join(
            f"{x['validation_cutoff']} ({x['base_rate']:.1%}; {x['train_cutoffs']}, {x['train_rows']:,})"
            for x in o["origins"])
        head += f"; {len(o['unmeasured'])} earlier: not enough history" if o["unmeasured"] else ""
        for i, (name, s) in enumerate((n, o["mean"][n]) for n in SCORERS if n in o["mean"]):
            vs = (_interval(o["versus"]["roc_auc"]), _interval(o["versus"]["pr_auc"])) if i == 0 else ("", "")
            lines.append(f"| {ds.name if i == 0 else ''} | {head if i == 0 else ''} | {SCORERS[name]} | "
                         f"{s['roc_auc']:.4f} | {s['pr_auc']:.4f} | {s['brier']:.4f} | {s['calibration_error']:.3f} | "
                         f"{vs[0]} | {vs[1]} |")
    return [*lines, ""]


def value_experiment(ds: DataSet, home: Path) -> dict:
    """Issue #13 part 4: expected spend in the horizon on the validation snapshot, three ways, against the realised
    spend: the run rate (what the scores carry), Gamma-Gamma x Pareto/NBD (fitted on the validation cutoff's own
    histories, no labels), an XGBoost regressor learned on the training snapshots' realised spend."""
    import pandas as pd

    from churn.settings import defaults, utc
    from features.customer import FEATURE_NAMES
    from flows.train import build_snapshots
    from models.scoring import expected_value
    from models.value import GammaGammaBTYD, SpendRegressor, value_metrics
    from storage import catalog, layout, store

    config = defaults(home, **REFERENCE).train_config(horizon_days=ds.horizon_days)
    started = time.monotonic()
    plan, info = build_snapshots(config, utc(ds.as_of) if ds.as_of else None)
    frame = catalog.read_snapshots(Path(info["path"]))
    paths, h = layout.Paths(home), pd.Timedelta(days=ds.horizon_days)
    parts = []
    for cutoff, rows in frame.groupby("cutoff", sort=True):
        c = pd.Timestamp(cutoff)
        c = c.tz_localize("UTC") if c.tzinfo is None else c
        w = store.window_activity(paths, rows["customer_id"], c, c + h, tuple(config.activity_types))
        parts.append(rows.assign(realised_spend=w["spend"].reindex(rows["customer_id"]).to_numpy()))
    frame = pd.concat(parts)
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    y = validation["realised_spend"].to_numpy()
    predictions = {
        "run_rate": expected_value(validation, ds.horizon_days).to_numpy(),
        "gamma_gamma_pareto_nbd": GammaGammaBTYD(ds.horizon_days, config.btyd_sample_customers, config.seed).fit(
            validation.set_index("customer_id")).expected_spend(validation.set_index("customer_id")).to_numpy(),
        "xgboost_regressor": SpendRegressor(FEATURE_NAMES, config.seed).fit(train, train["realised_spend"])
        .expected_spend(validation).to_numpy(),
    }
    return {"validation_cutoff": info["validation_cutoff"], "seconds": round(time.monotonic() - started, 1),
            "models": {k: value_metrics(y, p) for k, p in predictions.items()}}


NEXT_PURCHASE_CAP_DAYS = 365  # a predicted median beyond a year reads "not within a year" in the error measures
NEXT_PURCHASE_GRID = np.unique(np.round(np.geomspace(1, 3650, 60)))  # days, for the BTYD and classifier medians


def curve_experiment(ds: DataSet, home: Path) -> dict:
    """Issue #13 part 3: the churn-time curve (P(no purchase within 30/60/90/180 days), the horizons the data set's
    history allows) by per-horizon classifiers, by XGBoost's survival:aft, and by the AFT's shape through the
    data set's horizon classifier (anchored); then the median days to the next purchase against Pareto/NBD's, on
    a validation snapshot as far before as-of as the longest horizon (every horizon's label known)."""

    from churn.settings import defaults, utc
    from features.customer import FEATURE_NAMES
    from flows.train import build_snapshots
    from models.btyd import ParetoNBD
    from models.curve import (
        CURVE_HORIZONS,
        AftCurve,
        HorizonClassifiers,
        anchored_location,
        censored_at,
        curve_metrics,
        horizon_labels,
        lognormal_curve,
        median_from_grid,
        next_purchase_errors,
        waiting_interval,
    )
    import pandas as pd

    from models.snapshots import NotEnoughHistory
    from storage import catalog

    started = time.monotonic()
    for horizons in (CURVE_HORIZONS[:k] for k in range(len(CURVE_HORIZONS), 1, -1)):
        config = defaults(home, **REFERENCE).train_config(horizon_days=max(horizons))
        try:
            plan, info = build_snapshots(config, utc(ds.as_of) if ds.as_of else None)
            break
        except NotEnoughHistory as e:
            why = str(e)
    else:
        return {"unmeasured": why}
    frame = catalog.read_snapshots(Path(info["path"]))
    frame = frame.join(horizon_labels(frame, horizons))  # every row is observed for the longest horizon at least
    train, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    train = censored_at(train, pd.Timestamp(validation["cutoff"].max()))  # what was known at the validation cutoff
    out = {"validation_cutoff": info["validation_cutoff"], "train_cutoffs": len(plan.train),
           "horizons": list(horizons), "models": {}, "next_purchase": {}}
    classifiers = HorizonClassifiers(FEATURE_NAMES, horizons, seed=config.seed).fit(train)
    aft = AftCurve(FEATURE_NAMES, horizons, seed=config.seed).fit(train)
    anchor = ds.horizon_days if ds.horizon_days in horizons else max(horizons)
    p_anchor = classifiers.models_[anchor].churn_probability(validation).to_numpy()
    medians = {"aft": aft.location(validation), "anchored": anchored_location(p_anchor, anchor)}
    curves = {"classifiers": classifiers.curve(validation), "aft": aft.curve(validation),
              "anchored": lognormal_curve(medians["anchored"], horizons, index=validation.index)}
    for name, curve in curves.items():
        out["models"][name] = curve_metrics(curve, validation, horizons)
    grid = NEXT_PURCHASE_GRID
    steps = np.column_stack([np.ones(len(validation)), curves["classifiers"].to_numpy()])
    medians["classifiers"] = median_from_grid(
        np.vstack([np.interp(grid, (0, *horizons), row) for row in steps]), grid)
    pareto = ParetoNBD(max(horizons), 1.0, config.btyd_sample_customers, config.seed).fit(
        validation.set_index("customer_id"))
    medians["pareto_nbd"] = median_from_grid(pareto.no_purchase_within(validation.set_index("customer_id"), grid),
                                             grid)
    bought = validation["days_since_last_purchase"].notna().to_numpy()  # BTYD has no clock for never-buyers
    lower, upper = waiting_interval(validation)
    for name, m in medians.items():
        out["next_purchase"][name] = next_purchase_errors(m[bought], lower[bought], upper[bought],
                                                          NEXT_PURCHASE_CAP_DAYS)
    out["anchor_horizon"] = anchor
    out["seconds"] = round(time.monotonic() - started, 1)
    return json.loads(json.dumps(out))  # horizon keys as text, as when read back from results.json


VALUE_MODELS = {"run_rate": "run rate (last year's spend x horizon / 365; the scores' expected_value)",
                "gamma_gamma_pareto_nbd": "Gamma-Gamma x Pareto/NBD (MAP, fitted at the validation cutoff)",
                "xgboost_regressor": "XGBoost regressor (Tweedie) of the horizon's spend, training snapshots"}


CURVE_MODELS = {"classifiers": "one classifier per horizon, running minimum",
                "aft": "XGBoost survival:aft (normal, scale 1.2), interval censored",
                "anchored": "the horizon classifier's P(churn) carried to every horizon by the AFT's shape",
                "pareto_nbd": "Pareto/NBD (MAP, fitted at the validation cutoff)"}


def curve_markdown(results: dict, sets: tuple[DataSet, ...]) -> list[str]:
    from models.curve import CURVE_HORIZONS

    lines = ["**Churn-time curve** (issue #13, part 3): P(no purchase within h days) for the horizons each history "
             "allows (180 days needs 540 days of events), on a validation snapshot that many days before as-of "
             "(every horizon's label known): ROC-AUC / Brier per horizon and the integrated Brier score (weighted "
             "by the gaps between horizons).", "",
             "| data set | model | " + " | ".join(f"{h} days" for h in CURVE_HORIZONS) + " | integrated Brier |",
             "|---|---|" + "---|" * (len(CURVE_HORIZONS) + 1)]
    for ds in sets:
        c = results.get(ds.name, {}).get("curve")
        if not c:
            continue
        if "unmeasured" in c:
            lines.append(f"| {ds.name} | unmeasured: {c['unmeasured']} |" + " |" * (len(CURVE_HORIZONS) + 1))
            continue
        for i, (name, m) in enumerate(c["models"].items()):
            cells = " | ".join(f"{m[str(h)]['roc_auc']:.4f} / {m[str(h)]['brier']:.4f}" if str(h) in m else "-"
                               for h in CURVE_HORIZONS)
            lines.append(f"| {ds.name if i == 0 else ''} | {CURVE_MODELS[name]} | {cells} | "
                         f"{m['integrated_brier']:.4f} |")
    lines += ["", "**Days to the next purchase** (the median of each model's waiting time; buyers of the same "
              "validation snapshot; a median beyond 365 days counts as 365): mean and median absolute error over the "
              "customers whose next purchase was seen before the data end, and over every buyer the mean distance "
              "from the prediction to what is known (a customer not seen again costs only a prediction before the "
              "data end).", "",
              "| data set | model | MAE, seen | median abs. error, seen | customers seen | distance to the known "
              "interval, all |", "|---|---|---|---|---|---|"]
    for ds in sets:
        c = results.get(ds.name, {}).get("curve")
        for i, (name, m) in enumerate(((c or {}).get("next_purchase") or {}).items()):
            lines.append(f"| {ds.name if i == 0 else ''} | {CURVE_MODELS[name]} | {m['mae_seen']:.1f} | "
                         f"{m['median_abs_error_seen']:.1f} | {m['n_seen']:,} of {m['n']:,} | {m['interval_mae']:.1f} |")
    return [*lines, ""]


def value_markdown(results: dict, sets: tuple[DataSet, ...]) -> list[str]:
    lines = ["**Expected spend in the horizon** (issue #13, part 4), on each data set's validation snapshot against "
             "the realised spend of the horizon: mean absolute error, Spearman rank correlation, and the share of "
             "the realised spend held by the top 10 % of customers by prediction.", "",
             "| data set | model | MAE | Spearman | top-decile share | mean predicted / realised |",
             "|---|---|---|---|---|---|"]
    for ds in sets:
        v = results.get(ds.name, {}).get("value")
        if not v:
            continue
        for i, (name, m) in enumerate(v["models"].items()):
            lines.append(f"| {ds.name if i == 0 else ''} | {VALUE_MODELS[name]} | {m['mae']:.2f} | "
                         f"{m['spearman']:.3f} | {m['top_decile_share']:.1%} | {m['mean_predicted']:.2f} / "
                         f"{m['mean_realised']:.2f} |")
    return [*lines, ""]


# ---------------------------------------------------------------- Markdown

def _interval(v: dict | None) -> str:
    if not v:
        return ""
    name = SCORERS.get(v["baseline"], v["baseline"])
    return f"{v['diff']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] vs {name}"


RULES = ("A settings change is kept when, on every data set, the model's ROC-AUC and PR-AUC are above the reference "
         "row's and its Brier score below. The refit is asked only not to hurt: it is kept unless, on some data set, "
         "the interval of refit minus not refitted lies wholly below 0 in ROC-AUC or PR-AUC, or its Brier score is "
         "higher. An experiment declared as judged against another row, or as neutral where it changes nothing "
         "(metrics identical to the row it is judged against, by construction), says so in its decision.")


def decisions(results: dict) -> dict[str, str]:
    """Per experiment, by RULES: "kept" or "dropped" (and how many data sets could not be measured)."""
    out = {}
    for ex in EXPERIMENTS:
        if ex.name == "reference":
            continue
        verdicts = []
        for ds_results in results.values():
            r = ds_results.get(ex.name)
            if not r or not r["scorers"]:
                verdicts.append(None)
                continue
            m = r["scorers"]["model"]
            if ex.backtest_refit:
                verdicts.append(all(r["versus"][k]["high"] >= 0 for k in ("roc_auc", "pr_auc"))
                                and m["brier"] <= r["scorers"]["evaluated"]["brier"])
            else:
                ref = ds_results[ex.against]["scorers"]["model"]
                if ex.neutral_when_identical and all(m[c] == ref[c] for c in ("roc_auc", "pr_auc", "brier")):
                    verdicts.append("neutral")
                    continue
                verdicts.append(m["roc_auc"] > ref["roc_auc"] and m["pr_auc"] > ref["pr_auc"]
                                and m["brier"] < ref["brier"])
        neutral = verdicts.count("neutral")
        measured = [v for v in verdicts if v is not None and v != "neutral"]
        unmeasured = len(verdicts) - len(measured) - neutral
        notes = [f"{unmeasured} data set(s) unmeasured"] * bool(unmeasured) + [
            f"identical to {ex.against} on {neutral} data set(s)"] * bool(neutral)
        out[ex.name] = ("kept" if measured and all(measured) else "dropped") + (
            f" ({'; '.join(notes)})" if notes else "") + (f"; {ex.note}" if ex.note and measured and all(measured)
                                                          else "")
    return out


def markdown(results: dict, sets: tuple[DataSet, ...], command: str) -> str:
    lines = [f"Generated by `{command}` (do not edit by hand). Every row of a table is scored on the same validation "
             "snapshot of its data set; 95 % paired bootstrap intervals. The decisions were taken by looking at "
             "these validation snapshots, so the kept rows are not untouched estimates. " + RULES + " Columns: "
             "training cutoffs (for the refit: its training cutoffs plus the validation cutoff it was refitted with), "
             "training rows, trees.", ""]
    verdict = decisions(results)
    lines += ["| experiment | what changes | decision |", "|---|---|---|"]
    lines += [f"| {ex.name} | {ex.meaning} | {verdict.get(ex.name, 'reference')} |" for ex in EXPERIMENTS]
    lines.append("")
    for ds in sets:
        rs = results.get(ds.name, {})
        ref = rs.get("reference", {})
        if not ref.get("scorers"):
            continue
        m = ref["scorers"]["model"]
        drift = ""
        if ref.get("train_churn_rates"):  # the labels' base rate over time, and how far each scorer's mean is from it
            means = ref["mean_predicted"]
            drift = (" Churn rate at the training cutoffs, oldest first: "
                     + ", ".join(f"{r:.1%}" for r in ref["train_churn_rates"]) + "; mean P(churn) on the validation "
                     f"snapshot: model {means['model']:.1%}, logistic RFM {means['logistic_rfm']:.1%} (reference row).")
        lines += [f"**{ds.title}**: validation at {ref['validation_cutoff']}, {int(m['n']):,} customers, churn rate "
                  f"{m['base_rate']:.1%}.{drift}", "",
                  "| experiment | cutoffs, rows, trees | scorer | ROC-AUC | PR-AUC | Brier | calibration error "
                  "| model - best baseline, ROC-AUC | model - best baseline, PR-AUC |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for ex in EXPERIMENTS:
            r = rs.get(ex.name)
            if r is None:
                continue
            if not r["scorers"]:
                lines.append(f"| {ex.name} | unmeasured: {r.get('unmeasured', '')} | | | | | | | |")
                continue
            size = f"{r['train_cutoffs']}, {r['train_rows']:,}, {r['trees']}"
            names = ["model", "evaluated"] if ex.backtest_refit else [k for k in SCORERS if k in r["scorers"]]
            for i, name in enumerate(names):
                s = r["scorers"][name]
                label = ("refit" if name == "model" else "not refitted") if ex.backtest_refit else SCORERS[name]
                label = "blend (model + logistic RFM) / 2" if ex.blend and name == "model" else label
                label = ("XGBoost boosted from logistic RFM" if ex.from_logistic else
                         "cross-fitted stack (model, logistic RFM, curve)" if ex.stack_cv else
                         "model on the matched history" if ex.matched_history else
                         "model with the cadence inputs" if ex.cadence else
                         "model on the observed-history features" if ex.observed_history else label
                         ) if name == "model" else label
                label = {"alone": "churn-time curve at the horizon", "blend": "blend (model + curve) / 2",
                         "stack": "stack (model, logistic RFM, curve)"}.get(
                    ex.aft, label) if name == "model" else label
                vs = (_interval(r["versus"].get("roc_auc")), _interval(r["versus"].get("pr_auc"))) if i == 0 else ("", "")
                lines.append(f"| {ex.name if i == 0 else ''} | {size if i == 0 else ''} | {label} | {s['roc_auc']:.4f} | "
                             f"{s['pr_auc']:.4f} | {s['brier']:.4f} | {s['calibration_error']:.3f} | {vs[0]} | {vs[1]} |")
        lines.append("")
        gap = ref.get("versus_oracle_events")
        if gap:
            lines += [f"Reference model minus the events-only oracle, ROC-AUC: {gap['diff']:+.4f} [{gap['low']:+.4f}, "
                      f"{gap['high']:+.4f}] (the oracle that knows the state is not reachable from events).", ""]
    if any(results.get(ds.name, {}).get("curve") for ds in sets):
        lines += curve_markdown(results, sets)
    if any(results.get(ds.name, {}).get("value") for ds in sets):
        lines += value_markdown(results, sets)
    if any(results.get(ds.name, {}).get("origins") for ds in sets):
        lines += origins_markdown(results, sets)
    return "\n".join(lines).rstrip() + "\n"


OPTIONAL = ("curve", "value", "origins")  # measured with --curve, --value, --origins: on every data set or on none


def missing_runs(results: dict, sets: tuple[DataSet, ...]) -> list[tuple[str, str]]:
    """(data set, experiment or optional measurement) pairs with no result (measured or recorded as unmeasured) in
    `results`: every experiment, and every OPTIONAL measurement that some data set holds."""
    held = [m for m in OPTIONAL if any(m in results.get(ds.name, {}) for ds in sets)]
    wanted = [ex.name for ex in EXPERIMENTS] + held
    return [(ds.name, name) for ds in sets for name in wanted if name not in results.get(ds.name, {})]


def replace_between_markers(text: str, body: str) -> str:
    """`text` with everything between the quality markers replaced by `body` (the markers must be there once)."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"the README needs exactly one {BEGIN} ... {END} block")
    return pattern.sub(lambda _: f"{BEGIN}\n{body}{END}", text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/quality-tables", description=__doc__.splitlines()[0])
    p.add_argument("--work", default="quality-data", help="data folders, one per data set (kept and reused)")
    p.add_argument("--data", default=str(SHARED_DATA), help="folder holding the two real data files")
    p.add_argument("--readme", default=str(Path(__file__).resolve().parent.parent / "README.md"))
    names = [ds.name for ds in datasets(SHARED_DATA)]
    p.add_argument("--only", nargs="*", choices=names, metavar="DATA_SET",
                   help=f"data set names (default: all): {', '.join(names)}")
    p.add_argument("--experiments", nargs="*", choices=[ex.name for ex in EXPERIMENTS], metavar="EXPERIMENT",
                   help="experiment names (default: all; the option alone: none): the first column of the README's "
                        "experiment table")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--curve", action="store_true", help="also measure the churn-time curve (issue #13 part 3)")
    p.add_argument("--value", action="store_true", help="also measure the expected-spend models (issue #13 part 4)")
    p.add_argument("--origins", action="store_true", help=f"also evaluate the reference settings at {ORIGINS} "
                   f"validation cutoffs {ORIGIN_STEP_DAYS} days apart (rolling origins)")
    p.add_argument("--render-only", action="store_true", help="rewrite the README from the results kept in --work")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work, readme = Path(args.work).resolve(), Path(args.readme)
    problem = check_paths(work, readme, Path(args.data), args.render_only, args.only)
    if problem:  # before any of the hour's work, not after it
        print(f"error: {problem}", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    churn = str(Path(sys.executable).with_name("churn"))
    sets = datasets(Path(args.data))
    cache = work / "results.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    try:
        measure(args, sets, work, churn, results, cache)
    except subprocess.CalledProcessError as e:  # churn ingest said why on stderr, in one line
        print(f"error: churn {e.cmd[1]} failed (exit {e.returncode}, its error above); the results measured so far "
              f"are kept in {cache}", file=sys.stderr)
        return 1
    missing = missing_runs(results, sets)
    if missing:  # a block rendered from part of the results would drop the published tables of the rest
        ds, ex = missing[0]
        partial = not args.render_only and (args.only is not None or args.experiments is not None)
        print(f"{'note' if partial else 'error'}: {len(missing)} run(s) are not in {cache} (e.g. {ex} on {ds}), so "
              f"the README block was left alone: it is written only from every run (without --only/--experiments "
              f"everything runs){'; the results measured so far are kept there' if cache.exists() else ''}",
              file=sys.stderr)
        return 0 if partial else 1
    readme.write_text(replace_between_markers(readme.read_text(), markdown(results, sets, "scripts/quality-tables")))
    log.info("wrote the quality tables into %s", readme)
    return 0


def check_paths(work: Path, readme: Path, data: Path, render_only: bool, only: list[str] | None) -> str | None:
    """Why the command cannot run with these paths, or None."""
    if work.exists() and not work.is_dir():
        return f"--work {work} is a file, not a folder"
    if not readme.is_file():
        return f"--readme {readme}: no such file"
    try:
        replace_between_markers(readme.read_text(), "")
    except ValueError as e:
        return f"--readme {readme}: {e}"
    if render_only:
        results = work / "results.json"
        return None if results.exists() else (f"nothing measured yet: {results} does not exist (run without "
                                              f"--render-only first)")
    to_ingest = [ds for ds in datasets(data) if (not only or ds.name in only)
                 and not ingested(data_home(work, ds)).exists()]
    missing = [step[-1] for ds in to_ingest for step in ds.ingest
               if step[-1].endswith(".parquet") and not Path(step[-1]).exists()]
    return f"no such data file: {missing[0]} (--data names the folder holding the real data sets)" if missing else None


def measure(args, sets: tuple[DataSet, ...], work: Path, churn: str, results: dict, cache: Path) -> None:
    """Run what `args` asks for on each data set, writing `results` to `cache` after each run."""
    for ds in sets:
        if args.render_only or (args.only and ds.name not in args.only):
            continue
        home = data_home(work, ds)
        ingest(ds, home, churn)
        if args.curve:
            log.info("%s: churn-time curve", ds.name)
            results.setdefault(ds.name, {})["curve"] = curve_experiment(ds, home)
            cache.write_text(json.dumps(results, indent=1))
        if args.origins:
            log.info("%s: rolling origins", ds.name)
            results.setdefault(ds.name, {})["origins"] = origins_experiment(ds, home, args.resamples)
            cache.write_text(json.dumps(results, indent=1))
        if args.value:
            log.info("%s: value models", ds.name)
            results.setdefault(ds.name, {})["value"] = value_experiment(ds, home)
            cache.write_text(json.dumps(results, indent=1))
        for ex in EXPERIMENTS:
            if args.experiments is not None and ex.name not in args.experiments:
                continue
            log.info("%s: %s", ds.name, ex.name)
            results.setdefault(ds.name, {})[ex.name] = run_experiment(ds, ex, home, args.resamples)
            cache.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
