"""The promotion rule and the champion's score on the candidate's snapshot, without a registry."""

import numpy as np
import pandas as pd

from models.churn_model import ChurnModel
from models.promotion import PRIMARY_METRIC, ChampionScore, champion_score, should_promote


def test_a_candidate_is_promoted_only_when_strictly_better_or_when_there_is_no_champion():
    assert should_promote({PRIMARY_METRIC: 0.80}, ChampionScore(None)).promote
    assert should_promote({PRIMARY_METRIC: 0.80}, ChampionScore(None, "champion v3 uses other features")).reason \
        == "champion v3 uses other features"
    assert should_promote({PRIMARY_METRIC: 0.81}, ChampionScore(0.80)).promote
    tie = should_promote({PRIMARY_METRIC: 0.80}, ChampionScore(0.80))
    assert not tie.promote and "<=" in tie.reason
    assert not should_promote({PRIMARY_METRIC: 0.79}, ChampionScore(0.80)).promote


def _model_and_snapshot(features):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, len(features))), columns=features)
    y = pd.Series((X[features[0]] + rng.normal(scale=0.5, size=400) > 0).astype(int))
    model = ChurnModel(features, seed=1, n_estimators=20).fit(X[:300], y[:300], X[300:], y[300:])
    return model.model_, X.assign(churned=y)


def test_the_champion_is_scored_on_the_same_snapshot_or_explained_away():
    model, snapshot = _model_and_snapshot(["a", "b"])
    s = champion_score(model, "1", snapshot)
    assert s.note is None and 0.8 < s.metric <= 1.0
    other = champion_score(model, "1", snapshot.rename(columns={"b": "c"}))
    assert other.metric is None and "uses other features" in other.note
