import numpy as np
import pandas as pd
import pytest

from features.customer import FEATURE_NAMES
from features.snapshots import stacked_snapshots
from models.baselines import RFM_COLUMNS, LogisticRFM, RecencyRule
from models.evaluate import metrics, top_k_mask
from models.promotion import Bootstrap
from models.snapshots import plan_cutoffs
from models.train import refit_on_all_labelled, train_and_evaluate
from simulator.generate import SimulationConfig, simulate
from simulator.oracle import no_purchase_probability


def test_cutoffs_keep_every_training_label_window_before_validation():
    plan = plan_cutoffs(pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2024-12-31T18:00Z"), 90, 4, 30, 90)
    assert plan.validation == pd.Timestamp("2024-10-02", tz="UTC")
    assert len(plan.train) == 4 and list(plan.train) == sorted(plan.train)
    assert all(c + pd.Timedelta(days=90) <= plan.validation for c in plan.train)
    assert plan.validation + pd.Timedelta(days=90) <= pd.Timestamp("2024-12-31T18:00Z")


def test_too_little_history_is_a_clear_error():
    with pytest.raises(ValueError, match="not enough history"):
        plan_cutoffs(pd.Timestamp("2024-06-01", tz="UTC"), pd.Timestamp("2024-12-01", tz="UTC"), 90, 4, 30, 90)


def test_zero_training_cutoffs_means_as_many_as_the_history_allows():
    start, as_of = pd.Timestamp("2024-01-01T09:30Z"), pd.Timestamp("2024-12-31T18:00Z")
    plan = plan_cutoffs(start, as_of, 90, 0, 7, 30)
    earliest = pd.Timestamp("2024-01-31", tz="UTC")  # the start's midnight after it, + 30 days
    assert plan.train[-1] == plan.validation - pd.Timedelta(days=90) and plan.train[0] >= earliest
    assert plan.train[0] - pd.Timedelta(days=7) < earliest  # one step earlier would be too early
    assert all(b - a == pd.Timedelta(days=7) for a, b in zip(plan.train, plan.train[1:]))
    assert plan_cutoffs(start, as_of, 90, 5, 7, 30).train == plan.train[-5:]  # a positive count is a maximum


def test_a_four_month_log_with_a_30_day_horizon_plans_cutoffs_and_its_default_follows_the_horizon(tmp_path):
    from churn.settings import defaults

    cfg = defaults(tmp_path).train_config(horizon_days=30)
    assert cfg.min_history_days == 30 and defaults(tmp_path).train_config().min_history_days == 90
    assert defaults(tmp_path, min_history_days=10).train_config(horizon_days=30).min_history_days == 10
    plan = plan_cutoffs(pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-04-30", tz="UTC"), 30,
                        cfg.n_train_cutoffs, cfg.cutoff_step_days, cfg.min_history_days)
    assert [c.date().isoformat() for c in plan.train] == ["2024-01-31", "2024-03-01"]
    assert plan.validation == pd.Timestamp("2024-03-31", tz="UTC")


def test_metrics_on_a_hand_checked_ranking():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    m = metrics(y, p)
    assert m["roc_auc"] == pytest.approx(19 / 21)
    assert m["recall_top20"] == pytest.approx(2 / 3) and m["lift_top20"] == pytest.approx(1.0 / 0.3)
    assert m["base_rate"] == pytest.approx(0.3)
    assert top_k_mask(p, 0.2).tolist() == [True, True] + [False] * 8


def test_recency_rule_probabilities_are_its_groups_training_rates():
    X = pd.DataFrame({"days_since_last_purchase": [10.0, 100.0, np.nan, 50.0]})
    rule = RecencyRule(90).fit(X, pd.Series([0, 1, 1, 1]))
    assert rule.churn_probability(X).tolist() == [0.5, 1.0, 1.0, 0.5]


def test_logistic_rfm_reads_recency_frequency_and_spend():
    assert RFM_COLUMNS == ("days_since_last_purchase", "purchases_365d", "spend_365d")


@pytest.fixture(scope="module")
def sim():
    cfg = SimulationConfig(customers=5000, days=700, seed=11, chunk_customers=5000)
    events, truth = next(iter(simulate(cfg)))
    end = events["event_time"].max()
    plan = plan_cutoffs(events["event_time"].min(), end, 90, 3, 30, 90)
    frame = stacked_snapshots(events, [*plan.train, plan.validation], 90, 365)
    train, val = frame[frame["cutoff"] != plan.validation], frame[frame["cutoff"] == plan.validation]
    return train, val, no_purchase_probability(truth, plan.validation, 90)


def test_model_beats_the_recency_rule_and_comes_close_to_the_oracle(sim):
    train, val, oracle = sim
    r = train_and_evaluate(train, val, FEATURE_NAMES, seed=1, horizon_days=90, btyd=False,
                           bootstrap=Bootstrap(200, 0.95, 1), oracles={"oracle": oracle})
    auc = r.metrics["roc_auc"]
    assert auc >= r.baselines["recency_rule_90d"]["roc_auc"] + 0.03
    assert auc >= r.baselines["oracle"]["roc_auc"] - 0.05
    assert auc <= r.baselines["oracle"]["roc_auc"] + 0.01  # nothing beats the oracle by more than noise
    assert r.metrics["calibration_error"] < 0.05
    assert r.sizes["validation_rows"] == len(val)
    for metric, v in r.versus_baseline.items():  # model minus the best baseline, never the oracle
        assert v["baseline"] in ("recency_rule_90d", "logistic_rfm") and v["low"] <= v["diff"] <= v["high"]
        best = max(b[metric] for name, b in r.baselines.items() if name != "oracle")
        assert v["diff"] == pytest.approx(r.metrics[metric] - best)


def test_same_seed_same_metrics_and_predictions(sim):
    train, val, _ = sim
    a = train_and_evaluate(train, val, FEATURE_NAMES, seed=3, horizon_days=90, btyd=False, bootstrap=None)
    b = train_and_evaluate(train, val, FEATURE_NAMES, seed=3, horizon_days=90, btyd=False, bootstrap=None)
    assert a.metrics == b.metrics and a.baselines == b.baselines
    assert np.array_equal(a.predictions["model"].to_numpy(), b.predictions["model"].to_numpy())


def test_logistic_rfm_ranks_better_than_chance(sim):
    train, val, _ = sim
    lr = LogisticRFM().fit(train, train["churned"])
    assert metrics(val["churned"], lr.churn_probability(val))["roc_auc"] > 0.75


def test_plots_draw_every_scorer_and_skip_rows_a_scorer_did_not_score():
    from models import plots

    rng = np.random.default_rng(0)
    preds = pd.DataFrame({"customer_id": range(200), "y": rng.integers(0, 2, 200), "model": rng.random(200),
                          "oracle": np.r_[rng.random(190), [np.nan] * 10]})
    for make in (plots.roc_pr_figure, plots.gain_figure, plots.calibration_figure):
        fig = make(preds, "churn v7 - validation snapshot 2024-03-01 - 90-day horizon")
        labels = [line.get_label().split(" (")[0] for line in fig.axes[0].lines]
        assert {"model", "oracle"} <= set(labels)
        assert fig._suptitle.get_text() == "churn v7 - validation snapshot 2024-03-01 - 90-day horizon"
        plots.plt.close(fig)


def test_curve_legends_carry_the_areas_and_the_importance_plot_shows_every_used_feature():
    """Issue #14: ROC/PR legends with the AUC; an importance plot where more than one bar is visible."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from models import plots

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    preds = pd.DataFrame({"customer_id": range(300), "y": y, "model": y * 0.5 + rng.random(300)})
    fig = plots.roc_pr_figure(preds)
    roc, pr = ([t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes)
    assert roc == [f"model (AUC {roc_auc_score(y, preds['model']):.3f})"]
    assert pr == [f"model (AP {average_precision_score(y, preds['model']):.3f})"]
    plots.plt.close(fig)
    # one feature takes 99.9 % of the gain: on a log scale the small ones still get visible bars
    imp = pd.Series({"days_since_last_purchase": 99_900.0, "orders_90d": 60.0, "spend_365d": 40.0, "returns": 0.0})
    fig = plots.importance_figure(imp)
    ax = fig.axes[0]
    widths = {t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches)}
    assert set(widths) == {"days_since_last_purchase", "orders_90d", "spend_365d"} and ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    span = np.log10(hi) - np.log10(lo)
    assert all((np.log10(w) - np.log10(lo)) / span > 0.1 for w in widths.values())  # each bar >10 % of the axis
    assert "unused: returns" in ax.get_title()
    plots.plt.close(fig)


def test_a_short_generated_history_trains_and_says_it_is_short():
    """120 days of events, a 30-day horizon: a model, its baselines and a note on what the history leaves out."""
    from models.snapshots import history_note

    events, _ = next(iter(simulate(SimulationConfig(customers=1500, days=120, seed=3, chunk_customers=1500))))
    start, end = events["event_time"].min(), events["event_time"].max()
    plan = plan_cutoffs(start, end, 30, 0, 7, 30)
    assert len(plan.train) >= 4
    frame = stacked_snapshots(events, [*plan.train, plan.validation], 30, 365)
    train, val = frame[frame["cutoff"] != plan.validation], frame[frame["cutoff"] == plan.validation]
    r = train_and_evaluate(train, val, FEATURE_NAMES, seed=1, horizon_days=30, btyd=False, bootstrap=None)
    assert r.metrics["roc_auc"] > r.baselines["recency_rule_30d"]["roc_auc"] - 0.02 and r.metrics["roc_auc"] > 0.7
    refit = refit_on_all_labelled(r.model, train, val)  # all labelled rows, the tree count chosen before
    assert refit.model_.get_booster().num_boosted_rounds() == r.model.best_iteration_ + 1
    assert refit.refit_rows_ == len(train) + len(val) and refit.features == r.model.features
    assert not np.allclose(refit.churn_probability(val).to_numpy(), r.model.churn_probability(val).to_numpy())
    note = history_note(plan, start, 365)
    assert note.startswith("short history") and f"{len(plan.train)} training cutoff(s)" in note
