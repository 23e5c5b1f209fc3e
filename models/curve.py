"""A churn-time curve per customer (issue #13, part 3): P(no purchase within h days) for several horizons, monotone
in h, and the expected days to the next purchase. Two candidates, measured against each other:

- `HorizonClassifiers`: one XGBoost classifier per horizon on the same features, made monotone by taking, from
  the shortest horizon on, the running minimum (P(no purchase within 60 days) cannot exceed that within 30);
- `AftCurve`: XGBoost's accelerated-failure-time objective (`survival:aft`) on the days to the next purchase,
  interval censored (a customer with no purchase before the data end is known only to wait longer), whose
  fitted distribution gives every horizon at once, monotone by construction.

The scores carry the AFT curve (it ranks and calibrates better on two of the three logs, needs one model, reads
censored waits, so short histories still get every horizon, and gives the median days to the next purchase
natively): see the README's quality tables. Pure: frames in, frames out. Time in days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from expectations.scores import CURVE_HORIZONS  # the contract declares the horizons (its column names) once
from models.churn_model import ChurnModel, early_stopping_mask


def curve_columns(horizons=CURVE_HORIZONS) -> list[str]:
    return [f"p_no_purchase_{h}d" for h in horizons]


class HorizonClassifiers:
    """One classifier per horizon (labels `churned_{h}d`), monotone by a running minimum over the horizons."""

    def __init__(self, features: list[str], horizons=CURVE_HORIZONS, seed: int = 0):
        self.features, self.horizons, self.seed = list(features), tuple(horizons), seed

    def fit(self, X: pd.DataFrame) -> "HorizonClassifiers":
        es = early_stopping_mask(pd.Index(X["customer_id"]))
        self.models_ = {}
        for h in self.horizons:
            y = X[f"churned_{h}d"]
            self.models_[h] = ChurnModel(self.features, seed=self.seed).fit(X[~es], y[~es], X[es], y[es])
        return self

    def curve(self, X: pd.DataFrame) -> pd.DataFrame:
        raw = np.column_stack([self.models_[h].churn_probability(X).to_numpy() for h in self.horizons])
        return pd.DataFrame(np.minimum.accumulate(raw, axis=1), index=X.index, columns=curve_columns(self.horizons))


AFT_SCALE = 1.2


def waiting_interval(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The days to the next activity as an interval (lower, upper) per snapshot row, from its `next_activity_days`
    (NaN: none seen) and `observed_days`: the exact days when seen, else (observed_days, inf), right censored."""
    days = X["next_activity_days"].to_numpy(dtype=float)
    seen = ~np.isnan(days)
    observed = X["observed_days"].to_numpy(dtype=float)
    return np.where(seen, days, observed), np.where(seen, days, np.inf)


def censored_at(X: pd.DataFrame, limit: pd.Timestamp) -> pd.DataFrame:
    """X with each row's wait as it was known at `limit` (an instant at or after every row's `cutoff`): watched at most
    until `limit` (`observed_days`), a next activity after it unseen (NaN). The curve evaluated on a validation
    snapshot learns only what was known at its cutoff, as the churn model's labels do."""
    cutoff = pd.to_datetime(X["cutoff"], utc=True)
    watched = ((pd.Timestamp(limit) - cutoff) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    if (watched < 0).any():
        raise ValueError(f"censored_at: rows with a cutoff after {limit}")
    observed = np.minimum(X["observed_days"].to_numpy(dtype=float), watched)
    days = X["next_activity_days"].to_numpy(dtype=float)
    return X.assign(observed_days=observed, next_activity_days=np.where(days <= observed, days, np.nan))


def horizon_labels(X: pd.DataFrame, horizons) -> pd.DataFrame:
    """`churned_{h}d` per horizon: 1 unless the next activity came within h days; only meaningful where the row was
    observed for at least h days (`observed_days` >= h)."""
    days = X["next_activity_days"].to_numpy(dtype=float)
    return pd.DataFrame({f"churned_{h}d": (~(days <= h)).astype("int64") for h in horizons}, index=X.index)


class AftCurve:
    """XGBoost `survival:aft` (normal errors on log days) on the days to the next activity after the cutoff, interval
    censored (see `waiting_interval`)."""

    def __init__(self, features: list[str], horizons=CURVE_HORIZONS, seed: int = 0, scale: float = AFT_SCALE):
        self.features, self.horizons, self.seed, self.scale = list(features), tuple(horizons), seed, scale

    def fit(self, X: pd.DataFrame, rounds: int | None = None) -> "AftCurve":
        """Early-stopping on a customer-level hold-out of X; with `rounds`, that many trees on all of X instead."""
        import xgboost as xgb

        es = (early_stopping_mask(pd.Index(X["customer_id"])) if rounds is None
              else np.zeros(len(X), dtype=bool))
        lower, upper = waiting_interval(X)

        def matrix(mask):
            d = xgb.DMatrix(X.loc[mask, self.features].astype("float64"), feature_names=self.features)
            d.set_float_info("label_lower_bound", np.maximum(lower[mask], 1e-3))
            d.set_float_info("label_upper_bound", upper[mask])
            return d

        params = {"objective": "survival:aft", "eval_metric": "aft-nloglik", "aft_loss_distribution": "normal",
                  "aft_loss_distribution_scale": self.scale, "learning_rate": 0.1, "max_depth": 3,
                  "min_child_weight": 5.0, "subsample": 0.8, "colsample_bytree": 0.8, "tree_method": "hist",
                  "seed": self.seed, "nthread": 2}
        if rounds is None:
            booster = xgb.train(params, matrix(~es), num_boost_round=1000, evals=[(matrix(es), "es")],
                                early_stopping_rounds=50, verbose_eval=False)
            self.best_iteration_ = int(booster.best_iteration)
        else:
            booster = xgb.train(params, matrix(~es), num_boost_round=rounds)
            self.best_iteration_ = rounds - 1
        self.booster_ = booster[: self.best_iteration_ + 1]  # the trees after the best iteration are dropped
        # the longest any training row was watched: horizons beyond it would be extrapolation (see `curve`)
        self.observed_days_ = float(np.max(X["observed_days"].to_numpy(dtype=float)))
        return self

    def to_artifact(self) -> tuple[bytes, dict]:
        """The booster (UBJSON) and what reading it needs: features, scale, horizons."""
        return bytes(self.booster_.save_raw("ubj")), {
            "objective": "survival:aft", "distribution": "normal", "scale": self.scale, "features": self.features,
            "horizons": list(self.horizons), "trees": self.best_iteration_ + 1, "observed_days": self.observed_days_}

    @classmethod
    def from_artifact(cls, raw: bytes, meta: dict) -> "AftCurve":
        import xgboost as xgb

        out = cls(meta["features"], tuple(meta["horizons"]), scale=float(meta["scale"]))
        out.booster_ = xgb.Booster()
        out.booster_.load_model(bytearray(raw))
        out.best_iteration_ = int(meta["trees"]) - 1
        out.observed_days_ = float(meta.get("observed_days", float("inf")))
        return out

    def location(self, X: pd.DataFrame) -> np.ndarray:
        """The fitted median days to the next activity (exp of the predicted location)."""
        import xgboost as xgb

        return self.booster_.predict(xgb.DMatrix(X[self.features].astype("float64"), feature_names=self.features))

    def curve(self, X: pd.DataFrame) -> pd.DataFrame:
        return lognormal_curve(self.location(X), self.horizons, self.scale, index=X.index)

    def no_activity_within(self, X: pd.DataFrame, days: float) -> pd.Series:
        """P(no activity within `days`) per row, indexed like X: the curve at one horizon (e.g. the churn horizon)."""
        return lognormal_curve(self.location(X), (days,), self.scale, index=X.index).iloc[:, 0]

    def served_horizons(self) -> tuple[int, ...]:
        """The horizons the curve is served for: those no longer than the longest wait training watched (a
        short history trained for a 30-day horizon watched about 60 days: its 90 and 180 would be guesses)."""
        return tuple(h for h in self.horizons if h <= self.observed_days_)


def curve_metrics(curve: pd.DataFrame, labels: pd.DataFrame, horizons=CURVE_HORIZONS) -> dict:
    """Per horizon ROC-AUC (the time-dependent AUC at h) and Brier; the integrated Brier score (mean over the
    horizons, weighted by the gaps between them)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    out = {}
    for c, h in zip(curve_columns(horizons), horizons):
        y, p = labels[f"churned_{h}d"].to_numpy(), curve[c].to_numpy()
        out[h] = {"roc_auc": float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else float("nan"),
                  "brier": float(brier_score_loss(y, p)), "base_rate": float(y.mean())}
    widths = np.diff((0, *horizons))
    out["integrated_brier"] = float(np.average([out[h]["brier"] for h in horizons], weights=widths))
    return out


def anchored_location(p_at: np.ndarray, horizon_days: float, scale: float = AFT_SCALE) -> np.ndarray:
    """The AFT location (median days) whose curve passes through P(no purchase within `horizon_days`) = `p_at`:
    the churn model's own probability carried to every other horizon with the AFT's shape (log-normal, `scale`)."""
    from scipy.stats import norm

    p = np.clip(np.asarray(p_at, dtype=float), 1e-6, 1 - 1e-6)
    return np.exp(np.log(horizon_days) - scale * norm.isf(p))


def lognormal_curve(location: np.ndarray, horizons=CURVE_HORIZONS, scale: float = AFT_SCALE,
                    index=None) -> pd.DataFrame:
    """P(no purchase within h days) for a log-normal waiting time with median `location` (days)."""
    from scipy.stats import norm

    mu = np.log(np.maximum(np.asarray(location, dtype=float), 1e-6))
    return pd.DataFrame({c: norm.sf((np.log(h) - mu) / scale) for c, h in zip(curve_columns(horizons), horizons)},
                        index=index)


def median_from_grid(no_purchase: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per row, the first grid day where P(no purchase within t) falls to 0.5 or below (linear between grid days),
    inf when it never does (a customer more likely gone than not). `no_purchase`: rows x grid, non-increasing."""
    p = np.asarray(no_purchase, dtype=float)
    below = p <= 0.5
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    out = np.full(len(p), np.inf)
    for i, j in enumerate(first):
        if j == 0:
            out[i] = grid[0]
        elif j > 0:
            p0, p1, t0, t1 = p[i, j - 1], p[i, j], grid[j - 1], grid[j]
            out[i] = t0 + (t1 - t0) * (p0 - 0.5) / (p0 - p1) if p0 != p1 else t1
    return out


def next_purchase_errors(predicted_days: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                         cap_days: float) -> dict:
    """How far predicted days to the next purchase lie from what happened. `lower`/`upper`: the known interval
    (equal when the purchase was seen, upper inf when it was not seen before the data end). Predictions are capped
    at `cap_days` (a median beyond it, or none, reads "not within cap_days"). Returns the mean absolute error over
    the customers whose next purchase was seen, and over everyone the mean distance from the prediction to the
    known interval (a censored customer costs only a prediction before the data end)."""
    pred = np.minimum(np.asarray(predicted_days, dtype=float), cap_days)
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    seen = np.isfinite(upper)
    distance = np.maximum(lower - pred, 0) + np.maximum(pred - upper, 0)
    return {"mae_seen": float(np.abs(pred[seen] - lower[seen]).mean()) if seen.any() else float("nan"),
            "n_seen": int(seen.sum()), "interval_mae": float(distance.mean()), "n": int(len(pred)),
            "median_abs_error_seen": float(np.median(np.abs(pred[seen] - lower[seen]))) if seen.any() else float("nan")}
