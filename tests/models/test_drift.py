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
    assert not refuse.publish and not refuse.warn and "not published" in refuse.message  # said once, as the error
    with pytest.raises(ValueError, match="drift action"):
        drift_decision(drifted, "ignore")


def _steady_store(days_of_history: int, rng) -> pd.DataFrame:
    """Active customers of a store whose log begins with the customers it already had (their first event is
    the log's first day) and then acquires customers at a steady rate, each staying with a constant hazard:
    nothing about the customers changes as the log gets longer."""
    n_new = 40 * days_of_history
    first_seen = np.concatenate([np.zeros(20_000), rng.uniform(0, days_of_history, n_new)])
    stays = np.concatenate([rng.exponential(3_000, 20_000), rng.exponential(400, n_new)])
    active = first_seen + stays > days_of_history
    tenure = days_of_history - first_seen[active]
    return pd.DataFrame({"tenure_days": tenure, "purchases_total": rng.poisson(tenure / 20.0),
                         "spend_90d": rng.gamma(2.0, 50.0, active.sum())})


def test_features_that_grow_with_the_store_are_compared_per_day_of_history_and_a_real_shift_is_still_caught():
    from features.definitions import GROWS_WITH_HISTORY

    assert set(GROWS_WITH_HISTORY) == {"tenure_days", "purchases_total"}
    rng = np.random.default_rng(3)
    at_training, at_scoring = _steady_store(550, rng), _steady_store(730, rng)  # the demo's cutoffs
    raw = reference_bins(at_training)
    assert set(drift_report(raw, at_scoring, 0.25)["over_threshold"]) & set(GROWS_WITH_HISTORY)  # the old false alarm
    ref = reference_bins(at_training, history_days=550, relative=GROWS_WITH_HISTORY)
    calm = drift_report(ref, at_scoring, 0.25, history_days=730)
    assert not calm["drifted"] and max(calm["psi"][c] for c in GROWS_WITH_HISTORY) < 0.1, calm
    # a real change in the customers is still caught: the long-standing customers left
    young = at_scoring[at_scoring["tenure_days"] < 200]
    assert drift_report(ref, young, 0.25, history_days=730)["over_threshold"].keys() >= {"tenure_days"}
    # and a shift in a plain feature as before
    poorer = at_scoring.assign(spend_90d=at_scoring["spend_90d"] / 3)
    assert list(drift_report(ref, poorer, 0.25, history_days=730)["over_threshold"]) == ["spend_90d"]
    # without the scoring date's history the per-day columns are left out, never compared raw
    assert "tenure_days" not in drift_report(ref, at_scoring, 0.25)["psi"]
