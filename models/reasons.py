"""Reason codes: the features that push a customer's churn score up, in plain language."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from features.definitions import BY_NAME, DEFINITIONS, ROLE

# feature -> what kind of reason it is; the win-back action table is keyed by these categories
REASON_CATEGORY: dict[str, str] = {f.name: f.reason_category for f in DEFINITIONS}
_GAP, _OVERDUE = ROLE["gap"], ROLE["overdue"]  # the features a sentence may quote as {gap} and {overdue}


@lru_cache(maxsize=None)
def _formatter(feature: str) -> Callable[[float, float, float], str]:
    """The sentence of one feature as a function of (value, mean purchase gap, overdue ratio).

    Built once per feature, so scoring a million customers formats without re-deciding the wording.
    """
    f = BY_NAME.get(feature)
    if f is None:  # not a declared feature: say what it is rather than fail the scoring
        return lambda v, gap, overdue: f"{feature} unknown" if v != v else f"{feature} = {v:g}"
    missing, sentence = f.when_missing, f.sentence
    if callable(sentence):
        return lambda v, gap, overdue: missing if v != v else sentence(v, gap, overdue)
    fmt = sentence.replace("{w}", f.window).format  # the window is fixed per feature: fill it in once
    if "{gap" in sentence or "{overdue" in sentence:
        return lambda v, gap, overdue: missing if v != v else fmt(v=v, gap=gap, overdue=overdue)
    return lambda v, gap, overdue: missing if v != v else fmt(v=v)  # one keyword formats about twice as fast


def reason_text(feature: str, row) -> str:
    """One sentence saying why this feature raises the customer's churn risk (`row`: feature -> value)."""
    def get(name: str) -> float:
        v = row.get(name, math.nan)
        return math.nan if v is None else float(v)

    return _formatter(feature)(get(feature), get(_GAP), get(_OVERDUE))


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """Per customer, the k features with the largest positive contribution to churn, with values and text.

    `contributions`: one column per feature (log-odds), same index as `features`. Columns
    reason_{i}_feature/_value/_contribution/_text; empty where fewer than i features push towards churn.
    """
    names = np.asarray(contributions.columns, dtype=object)
    c = contributions.to_numpy()
    fv = features[list(names)].to_numpy(dtype="float64")
    nan = pd.Series(np.nan, index=features.index)
    gap = features.get(_GAP, nan).to_numpy(dtype="float64")
    overdue = features.get(_OVERDUE, nan).to_numpy(dtype="float64")
    order = np.argsort(-c, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(c))
    out = {}
    for i in range(k):
        idx = order[:, i]
        contrib = c[rows, idx]
        positive = contrib > 0
        feat = np.where(positive, names[idx], None)
        out[f"reason_{i + 1}_feature"] = feat
        out[f"reason_{i + 1}_value"] = np.where(positive, fv[rows, idx], np.nan)
        out[f"reason_{i + 1}_contribution"] = np.where(positive, contrib, np.nan)
        text = np.full(len(c), None, dtype=object)
        value = fv[rows, idx]
        for j in np.unique(idx[positive]):  # one formatter per feature, over all its rows at once
            at = np.flatnonzero(positive & (idx == j))
            f = _formatter(str(names[j]))
            text[at] = [f(v, g, o) for v, g, o in zip(value[at].tolist(), gap[at].tolist(), overdue[at].tolist())]
        out[f"reason_{i + 1}_text"] = text
    return pd.DataFrame(out, index=contributions.index)
