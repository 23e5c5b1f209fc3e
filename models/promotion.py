"""Champion vs challenger: which metric decides, how the champion is measured, and the promotion rule (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.bootstrap import Interval, paired_difference
from models.evaluate import metrics

PRIMARY_METRIC = "roc_auc"  # higher is better; decides champion vs challenger


@dataclass(frozen=True)
class Bootstrap:
    """How differences between scorers are bootstrapped (values from the settings)."""

    n_resamples: int
    confidence: float
    seed: int

    def difference(self, y, p_a, p_b, metric_names: tuple[str, ...]) -> dict[str, Interval]:
        """metric(a) - metric(b) per metric, with its paired bootstrap interval over the same customers."""
        return paired_difference(y, p_a, p_b, metrics=metric_names, n_resamples=self.n_resamples,
                                 confidence=self.confidence, seed=self.seed)


@dataclass(frozen=True)
class ChampionScore:
    """The current champion's primary metric and predictions on the candidate's validation snapshot, or why none."""

    metric: float | None
    note: str | None = None
    predictions: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Decision:
    """Whether the candidate becomes champion, and why (with the interval of candidate minus champion)."""

    promote: bool
    reason: str
    interval: Interval | None = None


@dataclass(frozen=True)
class Verdict:
    """A decision and what it was made against: the champion version scored (None: there was none) and its score."""

    champion_version: str | None
    champion: ChampionScore
    decision: Decision


def champion_score(model, version: str, validation: pd.DataFrame) -> ChampionScore:
    """Score the champion (an XGBClassifier) on the same validation snapshot; unusable champions get a note."""
    names = list(model.get_booster().feature_names or [])
    if not names or any(c not in validation.columns for c in names):
        return ChampionScore(None, f"champion v{version} uses other features; it cannot be compared")
    try:
        p = model.predict_proba(validation[names].astype("float64"))[:, 1]
    except Exception as e:  # noqa: BLE001 - an unusable champion is replaced, and we say why
        return ChampionScore(None, f"champion v{version} could not be evaluated: {e}")
    return ChampionScore(metrics(validation["churned"].to_numpy(), p)[PRIMARY_METRIC], predictions=p)


def champion_interval(y, candidate, champion: ChampionScore, bootstrap: Bootstrap) -> Interval | None:
    """Candidate minus champion in the primary metric on the same customers, bootstrapped; None without a champion."""
    if champion.metric is None or champion.predictions is None:
        return None
    return bootstrap.difference(y, candidate, champion.predictions, (PRIMARY_METRIC,))[PRIMARY_METRIC]


def should_promote(candidate: dict[str, float], champion: ChampionScore, interval: Interval | None) -> Decision:
    """Promote when there is no comparable champion, or when the whole interval of candidate minus champion in the
    primary metric lies above 0: a challenger within noise does not replace the champion."""
    if champion.metric is None:
        return Decision(True, champion.note or "no champion yet")
    new = candidate[PRIMARY_METRIC]
    said = f"{PRIMARY_METRIC} {new:.4f} vs champion's {champion.metric:.4f} on the same snapshot"
    if interval is None:
        return Decision(False, f"{said}; no paired interval, so the champion is kept")
    if interval.low > 0:
        return Decision(True, f"{said}: difference {interval} lies above 0", interval)
    return Decision(False, f"{said}: difference {interval} does not lie above 0; the champion is kept", interval)


def horizon_decision(candidate_days: int, champion_days: int | None, configured_days: int,
                     champion_version: str) -> Decision | None:
    """Models of different horizons are never compared. None when the champion has the candidate's horizon (or
    an unknown one: compared as before); otherwise the candidate replaces the champion only when its horizon is
    the configured one (the setting changed on purpose), and is kept as challenger when it is an experiment."""
    if champion_days is None or champion_days == candidate_days:
        return None
    if candidate_days == configured_days:
        return Decision(True, f"champion v{champion_version} predicts a {champion_days}-day horizon and horizon_days "
                              f"is now {configured_days}: replaced without comparison (models of different horizons "
                              f"are never compared)")
    return Decision(False, f"trained for a {candidate_days}-day horizon while champion v{champion_version} and "
                           f"horizon_days are {champion_days} days: not compared, kept as challenger (set horizon_days "
                           f"= {candidate_days} in churn.toml to serve this horizon)")
