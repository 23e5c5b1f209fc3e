"""Paired bootstrap of a metric difference between two scorers on the same customers (pure numpy).

Resampling customers with replacement is the same as giving each customer a multinomial weight
(how often it was drawn). With the weights of many resamples in one matrix, ROC-AUC and PR-AUC
(average precision) are weighted sums over the scores sorted once per chunk of resamples: no loop
over customers. Both scorers are evaluated on the same resamples, so the interval is of the paired
difference (what a champion gate needs), not of two independent estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.evaluate import clip_probabilities

CHUNK_CELLS = 10_000_000  # resamples x customers held in memory at once (a few float32 copies: ~200 MB)


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the full sample) and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int

    def __str__(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%}, {self.n_resamples:,} resamples)"

    def as_dict(self) -> dict[str, float]:
        return {"diff": self.estimate, "low": self.low, "high": self.high}


def _sorted_by_score(y: np.ndarray, p: np.ndarray, w: np.ndarray):
    """Positive and negative weights per distinct score, scores ascending (resamples x distinct scores)."""
    order = np.argsort(p, kind="stable")
    ps, ys, wo = p[order], y[order].astype(bool), w[:, order]
    pos, neg = wo * ys, wo * ~ys
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    if len(starts) < len(ps):  # tied scores form one step
        pos, neg = np.add.reduceat(pos, starts, axis=1), np.add.reduceat(neg, starts, axis=1)
    return pos, neg


def weighted_roc_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC-AUC per row of weights `w` (resamples x customers); ties count one half."""
    pos, neg = _sorted_by_score(y, p, w)
    below = np.cumsum(neg, axis=1) - 0.5 * neg  # negatives with a lower score; ties count one half
    n_pos, n_neg = pos.sum(axis=1, dtype=float), neg.sum(axis=1, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,ij->i", pos.astype(float), below.astype(float)) / (n_pos * n_neg)


def weighted_average_precision(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision per row of weights (as sklearn's with sample weights: one step per distinct score)."""
    pos, neg = _sorted_by_score(y, -p, w)  # descending scores
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # sum over steps of (recall gained) x (precision there); recall gained = new positives / all positives.
        # Steps above the first drawn customer have no weight at all: precision 0/0 there, counted as 0 (it gains
        # no recall), not NaN, which dropped every resample without the top-scored customer (about 1 in e)
        precision = np.where(tp > 0, tp / (tp + fp), 0.0)
        return np.einsum("ij,ij->i", pos, precision) / tp[:, -1]


def weighted_brier(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Brier score per row of weights."""
    return (w @ (p - y) ** 2) / w.sum(axis=1, dtype=float)


def weighted_calibration_error(y: np.ndarray, p: np.ndarray, w: np.ndarray, bins: int = 10) -> np.ndarray:
    """Mean |predicted - observed| over the score deciles of all customers (models.evaluate's bins), each decile
    weighted by its drawn customers, per row of weights."""
    import pandas as pd

    decile = pd.qcut(pd.Series(p).rank(method="first"), bins, labels=False).to_numpy()  # as calibration_table
    onehot = np.eye(bins)[decile]  # customers x bins
    n = w @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs((w @ (onehot * p[:, None])) - (w @ (onehot * y[:, None]))) / n
    return np.nansum(gap * n, axis=1) / n.sum(axis=1)


WEIGHTED_METRICS = {"roc_auc": weighted_roc_auc, "pr_auc": weighted_average_precision, "brier": weighted_brier,
                    "calibration_error": weighted_calibration_error}


def paired_difference(y, p_a, p_b, *, metrics: tuple[str, ...], n_resamples: int, confidence: float,
                      seed: int) -> dict[str, Interval]:
    """metric(a) - metric(b) on the same customers, with a paired bootstrap percentile interval per metric."""
    return mean_paired_difference([(None, y, p_a, p_b)], len(y), metrics=metrics, n_resamples=n_resamples,
                                  confidence=confidence, seed=seed)


def mean_paired_difference(samples, n_customers: int, *, metrics: tuple[str, ...], n_resamples: int,
                           confidence: float, seed: int) -> dict[str, Interval]:
    """The mean over `samples` of metric(a) - metric(b), with a bootstrap interval that draws customers as blocks:
    each sample is (customer index in 0..n_customers-1 per row, or None when its rows are the customers in order,
    y, p_a, p_b), and a drawn customer brings its rows in every sample (e.g. the same customers scored at several
    validation cutoffs)."""
    samples = [(None if i is None else np.asarray(i), np.asarray(y, dtype=int), clip_probabilities(a),
                clip_probabilities(b)) for i, y, a, b in samples]
    n = n_customers
    full = np.ones((1, n), dtype=np.float32)

    def mean_difference(m: str, w: np.ndarray) -> np.ndarray:
        f = WEIGHTED_METRICS[m]
        # a sample whose rows are the customers reads the weights as they are (indexing would copy them)
        return np.mean([f(y, a, wi) - f(y, b, wi) for i, y, a, b in samples
                        for wi in [w if i is None else w[:, i]]], axis=0)

    point = {m: float(mean_difference(m, full)[0]) for m in metrics}
    rng = np.random.default_rng(seed)
    diffs = {m: [] for m in metrics}
    rows = max(n, sum(len(y) for _, y, _, _ in samples))
    step = max(1, CHUNK_CELLS // max(rows, 1))
    for start in range(0, n_resamples, step):
        k = min(step, n_resamples - start)
        draws = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
        w = np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float32)
        for m in metrics:
            diffs[m].append(mean_difference(m, w))
    alpha = (1 - confidence) / 2
    out = {}
    for m in metrics:
        d = np.concatenate(diffs[m])
        d = d[np.isfinite(d)]  # a resample with one class only has no AUC
        lo, hi = np.quantile(d, [alpha, 1 - alpha]) if len(d) else (np.nan, np.nan)
        out[m] = Interval(point[m], float(lo), float(hi), confidence, n_resamples)
    return out
