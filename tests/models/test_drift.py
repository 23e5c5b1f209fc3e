import numpy as np
import pandas as pd

from models.drift import drift_report, psi, reference_bins


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "y": rng.exponential(30, 20_000)})
    bins = reference_bins(ref)
    same = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "y": rng.exponential(30, 20_000)})
    shifted = pd.DataFrame({"x": rng.normal(1.0, 1, 20_000), "y": rng.exponential(30, 20_000)})
    assert psi(bins["x"], same["x"]) < 0.01
    assert psi(bins["x"], shifted["x"]) > 0.25
    report = drift_report(bins, shifted, 0.25)
    assert report["drifted"] and list(report["over_threshold"]) == ["x"] and report["max_psi_column"] == "x"
    assert not drift_report(bins, same, 0.25)["drifted"]


def test_missing_values_are_a_bin_of_their_own():
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan] * 100})
    bins = reference_bins(ref)
    assert psi(bins["x"], ref["x"]) < 1e-9
    assert psi(bins["x"], pd.Series([np.nan] * 400)) > 1.0
