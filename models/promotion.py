"""Champion vs challenger: which metric decides, how the champion is measured, and the promotion rule (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.evaluate import metrics

PRIMARY_METRIC = "roc_auc"  # higher is better; decides champion vs challenger


@dataclass(frozen=True)
class ChampionScore:
    """The current champion's primary metric on the candidate's validation snapshot, or why there is none."""

    metric: float | None
    note: str | None = None


@dataclass(frozen=True)
class Decision:
    """Whether the candidate becomes champion, and why."""

    promote: bool
    reason: str


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
    return ChampionScore(metrics(validation["churned"].to_numpy(), p)[PRIMARY_METRIC])


def should_promote(candidate: dict[str, float], champion: ChampionScore) -> Decision:
    """Promote when there is no comparable champion, or the candidate is better on the primary metric."""
    new = candidate[PRIMARY_METRIC]
    if champion.metric is None:
        return Decision(True, champion.note or "no champion yet")
    if new > champion.metric:
        return Decision(True, f"{PRIMARY_METRIC} {new:.4f} > champion's {champion.metric:.4f} on the same snapshot")
    return Decision(False, f"{PRIMARY_METRIC} {new:.4f} <= champion's {champion.metric:.4f} on the same snapshot")
