"""Reason codes: the features that push a customer's churn score up, in plain language.

A feature is a reason only when two things agree: its contribution raises the customer's score, and its
value points towards churn against the reference its record declares (the customer's own past, or the
other active customers scored the same day). The wording, direction and reference of each feature are
in its record (`features/definitions.py`); this module applies them.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from features.definitions import BY_NAME, DEFINITIONS, HIGHER, MIN_GAP_DAYS, PEERS, ROLE, Context, days, money, percent

# feature -> what kind of reason it is; the win-back action table is keyed by these categories
REASON_CATEGORY: dict[str, str] = {f.name: f.reason_category for f in DEFINITIONS}
_GAP, _OVERDUE, _RECENCY = ROLE["gap"], ROLE["overdue"], ROLE["recency"]  # what sentences and rules read
# a value is a reason against its peers when it is beyond at least this share of them (the median)
PEER_SHARE_MIN = 0.5

Formatter = Callable[[float, float, float, float], str]  # (value, mean gap, overdue ratio, peer share) -> text


@lru_cache(maxsize=None)
def _formatter(feature: str, currency: str) -> Formatter:
    """The sentence of one feature as a function of (value, mean purchase gap, overdue ratio, peer share).

    Built once per feature, computing only what its wording quotes, so scoring a million customers formats
    without re-deciding the wording.
    """
    f = BY_NAME.get(feature)
    if f is None:  # not a declared feature: say what it is rather than fail the scoring
        return lambda v, gap, overdue, share: f"{feature} unknown" if v != v else f"{feature} = {v:g}"
    missing = f.when_missing or f"{feature} unknown"
    sentence = f.sentence
    if callable(sentence):
        return lambda v, gap, overdue, share: missing if v != v else sentence(
            v, Context(gap, overdue, percent(share) if share == share else "?", currency))
    template = sentence.replace("{w}", f.window)  # the window is fixed per feature: fill it in once
    singular, plural = f.noun
    quote = {  # what a template may quote, each from (value, gap, overdue, share)
        "v": lambda v, g, o, s: v, "gap": lambda v, g, o, s: g, "overdue": lambda v, g, o, s: o,
        "peers": lambda v, g, o, s: percent(s) if s == s else "?",
        "money": lambda v, g, o, s: money(v, currency), "pct": lambda v, g, o, s: f"{v * 100:.0f} %",
        "days": lambda v, g, o, s: days(v),
        "n": lambda v, g, o, s: f"no {plural}" if round(v) == 0 else f"{v:.0f} {singular if round(v) == 1 else plural}",
    }
    # positional fields ("{0:.0f}") format about twice as fast as keywords; each field keeps its format spec
    fields, parts = [], []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            parts.append("{%d%s%s}" % (len(fields), f"!{conversion}" if conversion else "", f":{spec}" if spec else ""))
            fields.append(quote[name])
    fmt = "".join(parts).format
    if len(fields) == 2:  # the common case
        q1, q2 = fields
        return lambda v, g, o, s: missing if v != v else fmt(q1(v, g, o, s), q2(v, g, o, s))
    return lambda v, g, o, s: missing if v != v else fmt(*[q(v, g, o, s) for q in fields])


def reason_text(feature: str, row, currency: str) -> str:
    """One sentence saying why this feature raises the customer's churn risk.

    `row`: feature -> value, and optionally "peer_share" (the share of active customers on the safe side).
    """
    def get(name: str) -> float:
        v = row.get(name, math.nan)
        return math.nan if v is None else float(v)

    return _formatter(feature, currency)(get(feature), get(_GAP), get(_OVERDUE), get("peer_share"))


def peer_share(values: np.ndarray, peers: np.ndarray, churn_when: str) -> np.ndarray:
    """Per value, the share of `peers` on the safe side of it: strictly below for a feature whose higher
    values point towards churn, strictly above for one whose lower values do (NaN for a missing value)."""
    ref = np.sort(peers[~np.isnan(peers)])
    if not len(ref):
        return np.full(len(values), np.nan)
    # looked up in sorted order: a random-order search over a million peers is 10x slower (cache misses)
    order = np.argsort(values, kind="stable")
    found = np.empty(len(values))
    found[order] = np.searchsorted(ref, values[order], side="left" if churn_when == HIGHER else "right")
    share = found / len(ref) if churn_when == HIGHER else (len(ref) - found) / len(ref)
    return np.where(np.isnan(values), np.nan, share)


def points_to_churn(feature: str, values: np.ndarray, share: np.ndarray, recency: np.ndarray,
                    gap: np.ndarray) -> np.ndarray:
    """Whether each value of `feature` points towards churn against its record's reference (see module doc).

    `share`: peer_share of each value; `recency`: each customer's days since the last purchase (NaN if never);
    `gap`: their mean purchase gap in days (NaN without two purchases).
    """
    f = BY_NAME.get(feature)
    if f is None:  # an undeclared feature has no direction: its contribution alone decides, as before
        return np.ones(len(values), dtype=bool)
    known = ~np.isnan(values)
    if f.reference == PEERS:
        points = share >= PEER_SHARE_MIN
    else:
        points = values > f.neutral if f.churn_when == HIGHER else values < f.neutral
    out = np.where(known, points, f.when_missing is not None)
    with np.errstate(invalid="ignore"):  # NaN compares False
        if f.bought_within is not None:
            out &= recency <= f.bought_within
        if f.rhythm:
            out &= gap >= MIN_GAP_DAYS
    return out


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3, *, currency: str,
                peers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per customer, the k features with the largest positive contribution to churn whose values point towards
    churn (at most one per fact), with values and text.

    `contributions`: one column per feature (log-odds), same index as `features`; `peers`: the active customers
    a value is compared with (default: `features`). Columns reason_{i}_feature/_value/_contribution/_text;
    empty where fewer than i features qualify.
    """
    names = np.asarray(contributions.columns, dtype=object)
    c = contributions.to_numpy()
    fv = features[list(names)].to_numpy(dtype="float64")
    peers = features if peers is None else peers
    nan = pd.Series(np.nan, index=features.index)
    gap = features.get(_GAP, nan).to_numpy(dtype="float64")
    overdue = features.get(_OVERDUE, nan).to_numpy(dtype="float64")
    recency = features.get(_RECENCY, nan).to_numpy(dtype="float64")
    share = np.full(fv.shape, np.nan)
    ok = c > 0
    for j, name in enumerate(names):
        f = BY_NAME.get(str(name))
        if f is not None and f.reference == PEERS and ok[:, j].any() and name in peers:
            at = ok[:, j]  # only a value that raises the score can be a reason: compare only those
            share[at, j] = peer_share(fv[at, j], peers[name].to_numpy(dtype="float64"), f.churn_when)
        ok[:, j] &= points_to_churn(str(name), fv[:, j], share[:, j], recency, gap)
    facts: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        facts.setdefault(BY_NAME[name].fact if name in BY_NAME else str(name), []).append(j)
    for cols in (cols for cols in facts.values() if len(cols) > 1):  # one reason per fact: the strongest
        sub = np.where(ok[:, cols], c[:, cols], -np.inf)
        keep = np.zeros_like(sub, dtype=bool)
        keep[np.arange(len(sub)), sub.argmax(axis=1)] = True
        ok[:, cols] &= keep
    ranked = np.where(ok, c, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(c))
    out = {}
    for i in range(k):
        idx = order[:, i] if order.shape[1] > i else np.zeros(len(c), dtype=int)
        given = ok[rows, idx] if order.shape[1] > i else np.zeros(len(c), dtype=bool)
        out[f"reason_{i + 1}_feature"] = np.where(given, names[idx], None)
        value = fv[rows, idx]
        out[f"reason_{i + 1}_value"] = np.where(given, value, np.nan)
        out[f"reason_{i + 1}_contribution"] = np.where(given, c[rows, idx], np.nan)
        text = np.full(len(c), None, dtype=object)
        s = share[rows, idx]
        for j in np.unique(idx[given]):  # one formatter per feature, over all its rows at once
            at = np.flatnonzero(given & (idx == j))
            fmt = _formatter(str(names[j]), currency)
            text[at] = [fmt(v, g, o, p) for v, g, o, p in
                        zip(value[at].tolist(), gap[at].tolist(), overdue[at].tolist(), s[at].tolist())]
        out[f"reason_{i + 1}_text"] = text
    return pd.DataFrame(out, index=contributions.index)
