"""BTYD inputs from the events as of a cutoff, and the BG/NBD and Pareto/NBD baselines fitted on them."""

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from features.purchase_history import HISTORY_NAMES, purchase_history
from models.btyd import BGNBD, BTYD_FEATURES, ParetoNBD, degenerate, fit_sample, with_point_in_time_features

AS_OF = pd.Timestamp("2024-07-01T00:00:00Z")


def log(rows):
    df = pd.DataFrame(rows, columns=["customer_id", "event_type", "days_before"])
    df["event_time"] = (AS_OF - pd.to_timedelta(df.pop("days_before"), unit="D")).astype("datetime64[us, UTC]")
    return df


def test_history_counts_purchase_days_from_the_first_purchase_not_the_first_event():
    events = log([
        ("a", "visit", 100.0),        # first event, but the BTYD clock starts at the first purchase
        ("a", "purchase", 90.0), ("a", "purchase", 89.9),  # two invoices on one day: one purchase day
        ("a", "purchase", 70.0),
        ("b", "visit", 10.0),         # never bought
        ("c", "purchase", 50.0),
        ("c", "purchase", -20.0),     # after the cutoff: invisible
    ])
    got = purchase_history(events, AS_OF, pd.Index(["a", "b", "c"], name="customer_id"))
    want = pd.DataFrame({"repeat_purchase_days": [1.0, np.nan, 0.0], "purchase_span_days": [20.0, np.nan, 0.0],
                         "days_since_first_purchase": [90.0, np.nan, 50.0]},
                        index=pd.Index(["a", "b", "c"], name="customer_id"))
    assert_frame_equal(got, want)


def _simulated_history(n=400, seed=5):
    """Customers who buy at a Poisson rate until they drop out, some seen only as visitors."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        start = rng.uniform(30, 400)  # days before the cutoff of the first purchase
        rate, life = rng.gamma(2.0, 0.02), rng.exponential(250)
        t = 0.0
        while t <= min(life, start + 200):  # runs on past the cutoff: the future must not matter
            rows.append((f"c{i}", "purchase", start - t))
            t += rng.exponential(1 / rate)
    rows += [(f"v{i}", "visit", 5.0 * i) for i in range(5)]
    events = log(rows)
    return events, pd.Index(sorted(events["customer_id"].unique()), name="customer_id")


@pytest.fixture(scope="module")
def fitted():
    events, customers = _simulated_history()
    X = purchase_history(events, AS_OF, customers)
    return events, customers, X, {cls: cls(90, 0.8).fit(X) for cls in (BGNBD, ParetoNBD)}


@pytest.mark.parametrize("cls", [BGNBD, ParetoNBD])
def test_fit_gives_probabilities_indexed_like_x_and_ranks_recent_frequent_buyers_lower(fitted, cls):
    _, _, X, models = fitted
    m = models[cls]
    assert m.n_buyers_ == X["repeat_purchase_days"].notna().sum() and all(v > 0 for v in m.params_.values())
    p = m.churn_probability(X)
    assert p.index.equals(X.index) and ((p >= 0) & (p <= 1)).all()
    assert (p[X["repeat_purchase_days"].isna()] == 0.8).all()  # never bought: the given rate
    # same age and frequency: the one who bought last more recently is less likely to lapse
    probe = pd.DataFrame({"repeat_purchase_days": [5.0, 5.0, 0.0], "purchase_span_days": [200.0, 50.0, 0.0],
                          "days_since_first_purchase": [210.0, 210.0, 210.0]}, index=["recent", "stale", "once"])
    q = m.churn_probability(probe)
    assert q["recent"] < q["stale"] and q["recent"] < q["once"]
    # frequent and recent vs rare and recent
    busy = pd.DataFrame({"repeat_purchase_days": [20.0, 2.0], "purchase_span_days": [200.0, 200.0],
                         "days_since_first_purchase": [205.0, 205.0]}, index=["often", "rarely"])
    r = m.churn_probability(busy)
    assert r["often"] < r["rarely"]
    # the row order of X does not matter
    assert m.churn_probability(X.iloc[::-1]).reindex(X.index).equals(p)
    # the curve over several days: never rises with the days, NaN for never-buyers, the horizon's value at 90
    curve = m.no_purchase_within(X, [10, 90, 400])
    bought = X["repeat_purchase_days"].notna().to_numpy()
    assert np.isnan(curve[~bought]).all() and (np.diff(curve[bought], axis=1) <= 1e-12).all()
    assert np.allclose(curve[bought, 1], p[bought].to_numpy())


def test_events_after_the_cutoff_change_nothing(fitted):
    events, customers, X, models = fitted
    rng = np.random.default_rng(9)
    future = log([(c, "purchase", -rng.uniform(0.1, 200)) for c in customers[:300]])
    X2 = purchase_history(pd.concat([events, future], ignore_index=True), AS_OF, customers)
    assert_frame_equal(X2, X)  # the inputs are the same, so is the (deterministic) fit
    assert BGNBD(90, 0.8).fit(X2).params_ == models[BGNBD].params_


def test_needs_buyers():
    X = pd.DataFrame({c: [np.nan] for c in HISTORY_NAMES})
    with pytest.raises(ValueError, match="at least two customers"):
        BGNBD(90, 0.5).fit(X)


def test_the_fit_sample_is_keyed_by_customer_id_and_seed_not_by_row_order():
    ids = pd.Index([f"c{i}" for i in range(1000)], name="customer_id")
    a = ids[fit_sample(ids, 100, seed=1)]
    assert len(a) == 100 and a.is_unique
    assert ids[::-1][fit_sample(ids[::-1], 100, seed=1)].equals(a)  # same customers, same order, any row order
    assert not ids[fit_sample(ids, 100, seed=2)].equals(a)
    assert len(fit_sample(ids, None, seed=1)) == 1000 and len(fit_sample(ids, 5000, seed=1)) == 1000


@pytest.mark.parametrize("cls", [BGNBD, ParetoNBD])
def test_a_fit_on_a_sample_of_buyers_predicts_every_customer_close_to_the_full_fit(fitted, cls):
    _, _, X, models = fitted
    full = models[cls]
    m = cls(90, 0.8, sample_customers=200, seed=3).fit(X)
    assert m.n_fitted_ == 200 and m.n_buyers_ == full.n_buyers_ > 200
    p, q = m.churn_probability(X), full.churn_probability(X)
    assert p.index.equals(X.index) and p.notna().all()
    assert p.corr(q, method="spearman") > 0.98 and (p - q).abs().mean() < 0.05
    # the sample is drawn by customer id: shuffled rows give the same fit
    again = cls(90, 0.8, sample_customers=200, seed=3).fit(X.sample(frac=1.0, random_state=0))
    assert again.params_ == pytest.approx(m.params_, rel=1e-6)


def test_pymc_marketing_is_imported_only_by_a_fit():
    """Its import costs 10-40 s: the CLI, ingest, score, win-back and the train flow's modules must not pay it."""
    import subprocess
    import sys

    heavy = ("pymc_marketing", "pymc", "pytensor", "arviz")
    code = ("import sys, churn.cli, churn.bench, flows.ingest, flows.score, flows.winback, flows.train, models.train; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def test_point_in_time_features_are_p_alive_and_expected_purchases_empty_for_never_buyers(fitted):
    _, _, X, models = fitted
    f = models[BGNBD].point_in_time_features(X)
    assert list(f.columns) == list(BTYD_FEATURES) and f.index.equals(X.index)
    never = X["repeat_purchase_days"].isna()
    assert f[never].isna().all().all() and f[~never].notna().all().all()
    assert f["btyd_p_alive"].dropna().between(0, 1).all()
    # P(some purchase) <= expected purchases (Markov): the two outputs agree with the churn probability
    p_buy = 1 - models[BGNBD].churn_probability(X)[~never]
    assert (p_buy <= f.loc[~never, "btyd_expected_purchases_horizon"] + 1e-9).all()


def test_stacked_snapshots_get_the_features_of_a_fit_on_their_own_cutoff_only(fitted):
    events, customers, X, _ = fitted
    later = AS_OF + pd.Timedelta(days=60)
    frame = pd.concat([X.reset_index().assign(cutoff=AS_OF),
                       purchase_history(events, later, customers).reset_index().assign(cutoff=later)],
                      ignore_index=True)
    out = with_point_in_time_features(frame, 90, None, 0)
    first = out[out["cutoff"] == AS_OF].set_index("customer_id")[list(BTYD_FEATURES)]
    assert_frame_equal(first, BGNBD(90, 1.0).fit(X).point_in_time_features(X), check_names=False)
    assert out.index.equals(frame.index)


def test_a_map_fit_that_runs_off_to_a_boundary_is_fitted_again_from_the_published_start():
    """The grocery year's purchase histories at its validation cutoff (tests/fixtures, the Complete Journey's
    2,447 households): from the library's default start, in the fit sample's row order, the BG/NBD MAP fit ran off
    to a dropout concentration of 1.9e20, where the likelihood is garbage (log posterior +2.6e9) and the baseline's
    ROC-AUC fell from 0.889 to 0.861. The fit is started again from the published estimates and lands on the
    proper optimum (kappa about 4.7, r about 1.40)."""
    from tests.conftest import FIXTURES

    X = pd.read_parquet(FIXTURES / "complete_journey_histories.parquet").set_index("customer_id")
    fitted = BGNBD(90, 0.5, sample_customers=20_000, seed=42).fit(X)
    assert not degenerate(fitted.params_)
    assert 3 < fitted.params_["kappa_dropout"] < 7 and abs(fitted.params_["r"] - 1.404) < 0.02, fitted.params_
    assert degenerate({"r": 0.77, "kappa_dropout": 1.9e20}) and degenerate({"r": float("nan")})
    assert not degenerate({"r": 1.4, "kappa_dropout": 4.7, "beta": 5e4})
