"""Baselines measured in the same run as the model, on the same snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.definitions import ROLE

# the features the baselines read, by the role their records declare
RECENCY, FREQUENCY, MONETARY, TENURE = ROLE["recency"], ROLE["frequency"], ROLE["monetary"], ROLE["tenure"]


class RecencyRule:
    """"No purchase in the last N days" = churn. Its probability is the churn rate of its group in training."""

    def __init__(self, days: float):
        self.days = days

    def flag(self, X: pd.DataFrame) -> np.ndarray:
        r = X[RECENCY].to_numpy()
        return ~(r <= self.days)  # never bought counts as "no purchase"

    def fit(self, X: pd.DataFrame, y: pd.Series) -> "RecencyRule":
        f, yv = self.flag(X), np.asarray(y)
        self.rate_flagged_ = float(yv[f].mean()) if f.any() else 1.0
        self.rate_unflagged_ = float(yv[~f].mean()) if (~f).any() else 0.0
        return self

    def churn_probability(self, X: pd.DataFrame) -> pd.Series:
        """P(churn) per row, indexed like X (not predict_proba: that name promises an n x 2 array)."""
        return pd.Series(np.where(self.flag(X), self.rate_flagged_, self.rate_unflagged_), index=X.index)


RFM_COLUMNS = (RECENCY, FREQUENCY, MONETARY)


class LogisticRFM:
    """Logistic regression on recency, frequency and spend (log-scaled, standardised)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        r = X[RECENCY].fillna(X[TENURE] + 365.0)
        cols = [np.log1p(r.clip(lower=0)), np.log1p(X[FREQUENCY]), np.log1p(X[MONETARY].clip(lower=0))]
        return np.column_stack(cols)

    def fit(self, X: pd.DataFrame, y: pd.Series) -> "LogisticRFM":
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=self.seed))
        self.model_.fit(self._design(X), np.asarray(y))
        return self

    def churn_probability(self, X: pd.DataFrame) -> pd.Series:
        """P(churn) per row, indexed like X (not predict_proba: that name promises an n x 2 array)."""
        return pd.Series(self.model_.predict_proba(self._design(X))[:, 1], index=X.index)
