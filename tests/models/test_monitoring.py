"""The label-free estimate and the realised tables of models/monitoring.py (pure)."""

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.monitoring import by_tier, degradation, expected_metrics, expected_roc_auc, horizon_passed, lift_by_decile


def test_expected_roc_auc_is_the_pair_sum_weighted_by_p_i_times_1_minus_p_j_ties_half():
    p = np.array([0.1, 0.1, 0.5, 0.7, 0.7, 0.9])
    right = pairs = 0.0
    for i, j in itertools.permutations(range(len(p)), 2):
        w = p[i] * (1 - p[j])
        pairs += w
        right += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    assert expected_roc_auc(p) == pytest.approx(right / pairs, abs=1e-12)
    assert expected_roc_auc(np.full(5, 0.3)) == pytest.approx(0.5)  # one score for all: no ranking at all


def test_calibrated_scores_realise_about_the_expected_roc_auc_and_brier():
    rng = np.random.default_rng(7)
    p = rng.beta(2, 3, 4000)
    draws = [rng.random(len(p)) < p for _ in range(100)]
    est = expected_metrics(p)
    assert est["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y, p) for y in draws]), abs=0.002)
    assert est["brier"] == pytest.approx(np.mean([np.mean((p - y) ** 2) for y in draws]), abs=0.002)


def test_lift_by_decile_and_by_tier_written_out():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.linspace(0.95, 0.05, 10)
    t = lift_by_decile(y, p, deciles=5)
    assert t["customers"].tolist() == [2] * 5
    assert t["observed"].tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert t["lift"].tolist() == pytest.approx([1 / 0.3, 0.5 / 0.3, 0, 0, 0])
    tiers = np.array(["high"] * 3 + ["medium"] * 3 + ["low"] * 4)
    bt = by_tier(y, p, tiers).set_index("tier")
    assert list(bt.index) == ["high", "medium", "low"]
    assert bt["churners"].tolist() == [2, 1, 0] and bt["share_of_churners"].tolist() == pytest.approx([2 / 3, 1 / 3, 0])


def test_horizon_and_degradation_decisions():
    as_of = pd.Timestamp("2024-03-01T00:00Z")
    assert horizon_passed(as_of, 90, pd.Timestamp("2024-05-30T00:00Z"))
    assert not horizon_passed(as_of, 90, pd.Timestamp("2024-05-29T23:59Z"))
    assert degradation(0.70, 0.80, 0.05).degraded
    assert not degradation(0.76, 0.80, 0.05).degraded
    assert not degradation(0.70, None, 0.05).degraded  # no training estimate: not judged


def test_a_day_is_in_sample_when_its_outcome_window_lies_in_the_training_data():
    from models.monitoring import in_sample

    t = pd.Timestamp("2024-03-01T00:00Z")
    end = t + pd.Timedelta(days=90)
    assert in_sample(t, end, "2024-08-22") == "whole"
    assert in_sample(t, end, str(end.date())) == "whole"
    assert in_sample(t, end, "2024-04-01") == "partly"
    assert in_sample(t, end, "2024-03-01") is None  # trained on data up to the scored day: out of sample
    assert in_sample(t, end, None) is None
