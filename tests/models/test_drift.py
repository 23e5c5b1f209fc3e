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


def test_drift_decision_warns_on_drift_and_refuses_only_when_told():
    import pytest

    from models.drift import drift_decision

    calm = {"drifted": False}
    drifted = {"drifted": True, "threshold": 0.25, "over_threshold": {"spend_90d": 0.4}}
    assert drift_decision(calm, "refuse").publish and not drift_decision(calm, "refuse").warn
    warn = drift_decision(drifted, "warn")
    assert warn.publish and warn.warn and "spend_90d" in warn.message
    refuse = drift_decision(drifted, "refuse")
    assert not refuse.publish and "not published" in refuse.message
    with pytest.raises(ValueError, match="drift action"):
        drift_decision(drifted, "ignore")
