"""Expected spend within the horizon, three ways (issue #13, part 4): the run rate the scores carry
(`models.scoring.expected_value`), Gamma-Gamma x Pareto/NBD (BTYD: spend per purchase x expected purchases), and
an XGBoost regressor of the next horizon's spend learned on the training snapshots. Pure: frames in, frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.purchase_history import FREQUENCY
from models.btyd import ParetoNBD, _library_frame, _point, _quiet, fit_sample
from models.churn_model import early_stopping_mask

BASKET = "avg_basket_365d"  # the mean purchase amount of the last year: Gamma-Gamma's monetary value here


class GammaGammaBTYD:
    """Expected spend in the horizon = Gamma-Gamma's expected spend per purchase x Pareto/NBD's expected purchases,
    both fitted by pymc-marketing (MAP) on one cutoff's own purchase histories (no labels); 0 for never-buyers.
    The monetary value is the mean basket of the last year (the snapshots carry no mean of repeat purchases)."""

    def __init__(self, horizon_days: float, sample_customers: int | None = 20_000, seed: int = 0):
        self.horizon_days = horizon_days
        self.sample_customers = sample_customers
        self.seed = seed

    def fit(self, X: pd.DataFrame) -> "GammaGammaBTYD":
        self.purchases_ = ParetoNBD(self.horizon_days, 1.0, self.sample_customers, self.seed).fit(X)
        repeat = X[(X[FREQUENCY] > 0) & (X[BASKET] > 0)]
        sample = repeat.iloc[fit_sample(repeat.index, self.sample_customers, self.seed)]
        with _quiet():
            import pymc_marketing.clv as clv

            self.spend_ = clv.GammaGammaModel(data=self._frame(sample))
            self.spend_.fit(method="map", progressbar=False)
        return self

    @staticmethod
    def _frame(X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": np.arange(len(X)), "monetary_value": X[BASKET].to_numpy(dtype=float),
                             "frequency": X[FREQUENCY].to_numpy(dtype=float)})

    def expected_spend(self, X: pd.DataFrame) -> pd.Series:
        out = np.zeros(len(X))
        bought = (X[FREQUENCY].notna() & (X[BASKET] > 0)).to_numpy()
        if bought.any():
            with _quiet():
                n = _point(self.purchases_.model_.expected_purchases(data=_library_frame(X[bought]),
                                                                     future_t=self.horizon_days))
                per = _point(self.spend_.expected_customer_spend(data=self._frame(X[bought])))
            out[bought] = np.clip(n, 0, None) * np.clip(per, 0, None)
        return pd.Series(out, index=X.index, name="expected_spend")


class SpendRegressor:
    """XGBoost regressor (Tweedie: many zeros, a long tail) of the spend in the horizon after a cutoff, learned on
    stacked training snapshots with their realised spend; early stopping on a customer-level hold-out."""

    def __init__(self, features: list[str], seed: int = 0, n_jobs: int = 2):
        self.features = list(features)
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, spend: pd.Series) -> "SpendRegressor":
        from xgboost import XGBRegressor

        es = early_stopping_mask(pd.Index(X["customer_id"]))
        x, y = X[self.features].astype("float64"), np.clip(np.asarray(spend, dtype=float), 0, None)
        self.model_ = XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5, n_estimators=1000,
                                   learning_rate=0.1, max_depth=3, min_child_weight=5.0, subsample=0.8,
                                   colsample_bytree=0.8, early_stopping_rounds=50, tree_method="hist",
                                   random_state=self.seed, n_jobs=self.n_jobs)
        self.model_.fit(x[~es], y[~es], eval_set=[(x[es], y[es])], verbose=False)
        return self

    def expected_spend(self, X: pd.DataFrame) -> pd.Series:
        return pd.Series(self.model_.predict(X[self.features].astype("float64")), index=X.index,
                         name="expected_spend")


def value_metrics(realised: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, Spearman rank correlation, and the share of the realised spend held by the top decile of predictions."""
    from scipy.stats import spearmanr

    y, p = np.asarray(realised, dtype=float), np.asarray(predicted, dtype=float)
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    total = y.sum()
    return {"mae": float(np.abs(y - p).mean()), "spearman": float(spearmanr(y, p).statistic),
            "top_decile_share": float(y[top].sum() / total) if total > 0 else float("nan"),
            "mean_realised": float(y.mean()), "mean_predicted": float(p.mean()), "n": int(len(y))}
