"""The promotion rule and the champion's score on the candidate's snapshot, without a registry."""

import numpy as np
import pandas as pd
import pytest

from models.bootstrap import weighted_average_precision, weighted_brier, weighted_calibration_error, weighted_roc_auc
from models.churn_model import ChurnModel
from models.evaluate import metrics
from models.promotion import PRIMARY_METRIC, Bootstrap, ChampionScore, champion_interval, champion_score, should_promote

BOOT = Bootstrap(n_resamples=1000, confidence=0.95, seed=7)


def _scores(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = 1 / (1 + np.exp(-(2.0 * (y - 0.5) + rng.normal(size=n))))  # informative
    weak = 1 / (1 + np.exp(-(0.3 * (y - 0.5) + rng.normal(size=n))))  # barely
    return y, good, weak


def _gate(y, candidate, champion_p):
    champion = ChampionScore(metrics(y, champion_p)[PRIMARY_METRIC], predictions=champion_p)
    interval = champion_interval(y, candidate, champion, BOOT)
    return should_promote(metrics(y, candidate), champion, interval), interval


def test_without_a_comparable_champion_the_candidate_is_promoted():
    assert should_promote({PRIMARY_METRIC: 0.80}, ChampionScore(None), None).promote
    assert should_promote({PRIMARY_METRIC: 0.80}, ChampionScore(None, "champion v3 uses other features"), None).reason \
        == "champion v3 uses other features"


def test_identical_predictions_give_an_interval_covering_zero_and_no_promotion():
    y, good, _ = _scores()
    decision, interval = _gate(y, good, good.copy())
    assert interval.low <= 0 <= interval.high and not decision.promote
    assert "does not lie above 0" in decision.reason and decision.interval == interval


def test_a_clearly_better_candidate_is_promoted_and_a_worse_one_is_not():
    y, good, weak = _scores()
    better, interval = _gate(y, good, weak)
    assert better.promote and interval.low > 0 and "lies above 0" in better.reason
    worse, interval = _gate(y, weak, good)
    assert not worse.promote and interval.high < 0


def _noise_better(y, champion_p):
    """The champion's scores plus a little noise, with the first seed whose ROC-AUC comes out higher."""
    base = metrics(y, champion_p)[PRIMARY_METRIC]
    for seed in range(100):
        noisy = np.clip(champion_p + np.random.default_rng(seed).normal(scale=0.02, size=len(y)), 0, 1)
        if metrics(y, noisy)[PRIMARY_METRIC] > base:
            return noisy
    raise AssertionError("no noise draw came out better")


def test_a_challenger_better_only_by_noise_keeps_the_champion():
    y, good, _ = _scores()
    noisy = _noise_better(y, good)  # the same scorer, re-drawn: higher ROC-AUC on this snapshot by chance
    assert metrics(y, noisy)[PRIMARY_METRIC] > metrics(y, good)[PRIMARY_METRIC]  # "better" on the point estimate
    decision, interval = _gate(y, noisy, good)
    assert interval.estimate > 0 and interval.low < 0 < interval.high
    assert not decision.promote and "does not lie above 0; the champion is kept" in decision.reason


def test_without_a_paired_interval_an_existing_champion_is_kept():
    kept = should_promote({PRIMARY_METRIC: 0.90}, ChampionScore(0.80), None)
    assert not kept.promote and "no paired interval" in kept.reason


def test_the_bootstrap_is_deterministic_for_a_seed_and_paired():
    y, good, weak = _scores(500)
    a = BOOT.difference(y, good, weak, ("roc_auc", "pr_auc"))
    assert a == BOOT.difference(y, good, weak, ("roc_auc", "pr_auc"))
    other = Bootstrap(n_resamples=1000, confidence=0.95, seed=8).difference(y, good, weak, ("roc_auc",))
    assert other["roc_auc"].estimate == a["roc_auc"].estimate and other["roc_auc"].low != a["roc_auc"].low
    # the point estimate is the plain difference of the metrics on the full sample
    m_good, m_weak = metrics(y, good), metrics(y, weak)
    assert a["roc_auc"].estimate == pytest.approx(m_good["roc_auc"] - m_weak["roc_auc"], abs=1e-12)
    assert a["pr_auc"].estimate == pytest.approx(m_good["pr_auc"] - m_weak["pr_auc"], abs=1e-6)


def test_weighted_metrics_match_sklearn_with_sample_weights_and_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.uniform(size=300) + 0.3 * y, 1)  # many ties
    w = rng.integers(0, 4, size=(2, 300)).astype(float)
    for row in w:
        assert weighted_roc_auc(y, p, row[None, :])[0] == pytest.approx(roc_auc_score(y, p, sample_weight=row))
        assert weighted_average_precision(y, p, row[None, :])[0] == pytest.approx(
            average_precision_score(y, p, sample_weight=row))


def test_a_resample_without_the_top_scored_customer_still_has_an_average_precision():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    p = rng.uniform(size=200) + 0.3 * y
    w = np.ones(200)
    w[np.argmax(p)] = 0  # not drawn: about one resample in e
    assert weighted_average_precision(y, p, w[None, :])[0] == pytest.approx(
        average_precision_score(y, p, sample_weight=w))


def _model_and_snapshot(features):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, len(features))), columns=features)
    y = pd.Series((X[features[0]] + rng.normal(scale=0.5, size=400) > 0).astype(int))
    model = ChurnModel(features, seed=1, n_estimators=20).fit(X[:300], y[:300], X[300:], y[300:])
    return model.model_, X.assign(churned=y)


def test_the_champion_is_scored_on_the_same_snapshot_or_explained_away():
    model, snapshot = _model_and_snapshot(["a", "b"])
    s = champion_score(model, "1", snapshot)
    assert s.note is None and 0.8 < s.metric <= 1.0 and len(s.predictions) == len(snapshot)
    other = champion_score(model, "1", snapshot.rename(columns={"b": "c"}))
    assert other.metric is None and "uses other features" in other.note


@pytest.mark.parametrize("n", [1000, 1003, 57])
def test_weighted_brier_and_calibration_error_are_the_evaluation_metrics_for_unit_weights_and_weigh_by_resample(n):
    """The paired bootstrap of the clean-labels measurement reads Brier and calibration error the way
    `models.evaluate.metrics` does (same score deciles), and a weight counts a customer that many times."""
    rng = np.random.default_rng(n)
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    whole = metrics(y, p)
    ones = np.ones((1, n))
    assert weighted_brier(y, p, ones)[0] == pytest.approx(whole["brier"])
    assert weighted_calibration_error(y, p, ones)[0] == pytest.approx(whole["calibration_error"])
    w = rng.integers(0, 3, size=(1, n)).astype(float)
    expected = np.average((p - y) ** 2, weights=w[0])
    assert weighted_brier(y, p, w)[0] == pytest.approx(expected)


def test_over_several_origins_a_drawn_customer_brings_its_rows_at_every_origin():
    from models.bootstrap import mean_paired_difference

    y, good, weak = _scores(400)
    kw = {"metrics": ("roc_auc", "brier"), "n_resamples": 500, "confidence": 0.95, "seed": 3}
    one = mean_paired_difference([(np.arange(400), y, good, weak)], 400, **kw)
    # the same customers again at a second origin, rows in another order: drawn as blocks, every resample weighs both
    # origins' rows alike, so the mean difference and its interval are the one origin's exactly
    order = np.random.default_rng(1).permutation(400)
    two = mean_paired_difference([(np.arange(400), y, good, weak), (order, y[order], good[order], weak[order])],
                                 400, **kw)
    for m in kw["metrics"]:
        assert two[m].estimate == pytest.approx(one[m].estimate, abs=1e-12)
        assert (two[m].low, two[m].high) == pytest.approx((one[m].low, one[m].high), abs=1e-6)
    # a second origin of other customers (as many, independent) narrows the interval of the mean
    y2, good2, weak2 = _scores(400, seed=5)
    more = mean_paired_difference([(np.arange(400), y, good, weak), (np.arange(400, 800), y2, good2, weak2)],
                                  800, **kw)
    assert more["roc_auc"].high - more["roc_auc"].low < 0.85 * (one["roc_auc"].high - one["roc_auc"].low)
    # one origin is the paired bootstrap of a single snapshot
    single = Bootstrap(n_resamples=500, confidence=0.95, seed=3).difference(y, good, weak, kw["metrics"])
    assert single == one
