"""The quality-tables generator: decisions, Markdown and the README block it replaces (no data needed)."""

import pytest

from churn.quality import BEGIN, END, EXPERIMENTS, DataSet, decisions, markdown, missing_runs, replace_between_markers


def _scorers(auc, pr, brier):
    m = {"roc_auc": auc, "pr_auc": pr, "brier": brier, "calibration_error": 0.02, "base_rate": 0.4, "n": 1000.0}
    return {"model": m, "logistic_rfm": {**m, "roc_auc": auc - 0.05}}


def _run(auc, pr, brier, versus=None):
    scorers = _scorers(auc, pr, brier)
    if versus:  # the refit backtest: the refit ("model") against the same model not refitted
        scorers = {"model": scorers["model"], "evaluated": scorers["logistic_rfm"]}
    return {"validation_cutoff": "2024-10-01", "train_cutoffs": 4, "train_rows": 5000, "trees": 100,
            "scorers": scorers,
            "versus": versus or {"roc_auc": {"baseline": "logistic_rfm", "diff": 0.05, "low": 0.03, "high": 0.07}}}


def test_an_experiment_is_kept_only_if_it_helps_on_every_data_set_and_the_refit_only_if_it_does_not_hurt():
    up = {"diff": 0.01, "low": -0.01, "high": 0.02, "baseline": "evaluated"}
    down = {**up, "diff": -0.01, "low": -0.02, "high": -0.001}  # worse beyond noise
    results = {
        "a": {"reference": _run(0.80, 0.70, 0.20), "all-monthly": _run(0.81, 0.71, 0.19),
              "all-weekly": _run(0.81, 0.71, 0.21), "refit": _run(0.8, 0.7, 0.2, {"roc_auc": up, "pr_auc": up})},
        "b": {"reference": _run(0.80, 0.70, 0.20), "all-monthly": _run(0.82, 0.72, 0.18),
              "all-weekly": _run(0.83, 0.73, 0.17), "refit": _run(0.8, 0.7, 0.2, {"roc_auc": up, "pr_auc": down})},
    }
    unmeasured = {ex.name: "dropped (2 data set(s) unmeasured)" for ex in EXPERIMENTS
                  if ex.name not in results["a"]}  # an experiment measured nowhere is never kept
    assert len(unmeasured) == len(EXPERIMENTS) - 4
    assert decisions(results) == {"all-monthly": "kept", "all-weekly": "dropped", "refit": "dropped", **unmeasured}
    noise = {**up, "diff": -0.0005, "low": -0.001, "high": 0.0002}  # slightly lower, within noise: does not hurt
    results["b"]["refit"] = _run(0.8, 0.7, 0.2, {"roc_auc": noise, "pr_auc": up})
    assert decisions(results)["refit"] == "kept"
    results["b"]["refit"] = {"unmeasured": "not enough history", "scorers": {}}
    assert decisions(results)["refit"] == "kept (1 data set(s) unmeasured)"
    text = markdown(results, (DataSet("a", "Set A", (), 90), DataSet("b", "Set B", (), 90)), "scripts/quality-tables")
    assert "**Set A**: validation at 2024-10-01, 1,000 customers, churn rate 40.0%." in text
    assert "| reference | 4, 5,000, 100 | model (XGBoost) | 0.8000 | 0.7000 | 0.2000 | 0.020 | " \
           "+0.0500 [+0.0300, +0.0700] vs logistic RFM |" in text
    assert "| refit | unmeasured: not enough history |" in text
    assert [ex.name for ex in EXPERIMENTS][0] == "reference"


def test_an_experiment_declared_neutral_where_identical_is_judged_only_where_it_changes_something():
    """`all-monthly-season` is judged against `all-monthly`; on a data set where it is identical to it by construction
    (training cutoffs spanning less than a year) that data set neither keeps nor drops it."""
    results = {
        "long": {"reference": _run(0.80, 0.70, 0.20), "all-monthly": _run(0.81, 0.71, 0.19),
                 "all-monthly-season": _run(0.82, 0.72, 0.18)},
        "short": {"reference": _run(0.80, 0.70, 0.20), "all-monthly": _run(0.80, 0.70, 0.20),
                  "all-monthly-season": _run(0.80, 0.70, 0.20)},
    }
    verdict = decisions(results)
    assert verdict["all-monthly"] == "dropped"  # not declared so: identical on "short" is not above the reference
    assert verdict["all-monthly-season"].startswith("kept (identical to all-monthly on 1 data set(s)); served")
    results["long"]["all-monthly-season"] = _run(0.82, 0.70, 0.18)  # PR-AUC below all-monthly's where it changes
    assert decisions(results)["all-monthly-season"] == "dropped (identical to all-monthly on 1 data set(s))"
    results["long"]["all-monthly-season"] = results["long"]["all-monthly"]  # identical everywhere: nothing shown
    assert decisions(results)["all-monthly-season"].startswith("dropped")


def test_the_readme_block_is_replaced_between_its_markers_only():
    text = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    assert replace_between_markers(text, "new\n") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="exactly one"):
        replace_between_markers("no markers", "new\n")


def test_the_blend_is_the_mean_of_the_model_and_logistic_rfm_scored_like_the_model():
    import numpy as np
    import pandas as pd

    from churn.quality import blended
    from models.evaluate import metrics
    from models.promotion import Bootstrap
    from models.train import TrainingResult

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    preds = pd.DataFrame({"customer_id": range(200), "y": y, "model": rng.uniform(size=200),
                          "logistic_rfm": np.clip(y * 0.5 + rng.uniform(size=200) * 0.5, 0, 1)})
    baselines = {"logistic_rfm": metrics(y, preds["logistic_rfm"])}
    r = blended(TrainingResult(model=None, metrics={}, baselines=baselines, predictions=preds), Bootstrap(100, 0.9, 1))
    mean = (preds["model"] + preds["logistic_rfm"]) / 2
    assert r.metrics == metrics(y, mean) and r.predictions["model"].equals(mean)
    assert r.versus_baseline["roc_auc"]["baseline"] == "logistic_rfm"
    assert r.versus_baseline["roc_auc"]["diff"] == pytest.approx(r.metrics["roc_auc"] - baselines["logistic_rfm"]["roc_auc"])


def test_the_readme_block_is_not_rewritten_from_part_of_the_results():
    """A run of one data set into an empty work folder must not wipe the other tables (fresh-clone report)."""
    sets = (DataSet("a", "Set A", (), 90), DataSet("b", "Set B", (), 90))
    full = {name: {ex.name: _run(0.8, 0.7, 0.2) for ex in EXPERIMENTS} for name in ("a", "b")}
    assert missing_runs(full, sets) == []
    part = {"a": {"reference": _run(0.8, 0.7, 0.2)}}
    missing = missing_runs(part, sets)
    assert ("a", "all-monthly") in missing and ("b", "reference") in missing and ("a", "reference") not in missing
    # an optional measurement (--curve, --value, --origins) on one data set is wanted on every one: rendered from
    # part of them, the table would drop the published rows of the others
    full["a"]["origins"] = {"origins": [], "unmeasured": ["not enough history"]}
    assert missing_runs(full, sets) == [("b", "origins")]


@pytest.mark.parametrize("case", ["work is a file", "readme without markers", "render nothing", "no data file",
                                  "unknown data set", "unknown experiment"])
def test_wrong_paths_and_names_fail_before_any_work_in_one_line(tmp_path, capsys, case):
    from churn.quality import main

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{BEGIN}\n{END}\n")
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = {"work is a file": ["--work", str(afile)],
            "readme without markers": ["--readme", str(afile)],
            "render nothing": ["--render-only"],
            "no data file": ["--data", str(tmp_path / "nope"), "--only", "online-retail", "--experiments"],
            "unknown data set": ["--only", "onlineretail"],
            "unknown experiment": ["--experiments", "refrence"]}[case]
    argv = ["--work", str(tmp_path / "q"), "--readme", str(readme), *args]
    if case.startswith("unknown"):  # argparse: usage and one error line naming the choices
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
        return
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not (tmp_path / "q").exists() or case == "work is a file"  # nothing created
    assert readme.read_text() == f"# x\n{BEGIN}\n{END}\n"


def test_observed_history_scales_only_what_the_short_history_could_not_see():
    import numpy as np
    import pandas as pd

    from churn.quality import OBSERVED, with_observed_history
    from features.customer import FEATURE_NAMES

    start = pd.Timestamp("2024-01-01", tz="UTC")
    cutoffs = [start + pd.Timedelta(days=d) for d in (60, 135, 135, 400)]
    frame = pd.DataFrame({f: [1.0] * 4 for f in FEATURE_NAMES}).assign(
        cutoff=cutoffs, purchases_365d=[3.0, 3.0, 3.0, 3.0], purchases_30d=2.0, purchases_90d=[2.0, 2.0, 0.0, 2.0],
        purchase_trend_90d=[0.0, 0.0, -1.0, 0.0], avg_basket_365d=10.0, tenure_days=[60.0, 100.0, 135.0, 200.0],
        purchases_total=[6.0, 6.0, 6.0, 6.0])
    out = with_observed_history(frame, start)
    np.testing.assert_allclose(out[OBSERVED + "purchases_365d"], [3 * 365 / 60, 3 * 365 / 135, 3 * 365 / 135, 3])
    np.testing.assert_allclose(out[OBSERVED + "purchases_30d"], 2.0)  # every cutoff saw 30 days
    np.testing.assert_allclose(out[OBSERVED + "avg_basket_365d"], 10.0)  # a ratio: not scaled
    # 60 days: none of the previous 90 seen; 135 days: 45 of them seen, so they count double (2 before -> 4)
    trend = out[OBSERVED + "purchase_trend_90d"].to_numpy()
    assert np.isnan(trend[0])
    np.testing.assert_allclose(trend[1:], [(2 - 4) / (2 + 4), -1.0, 0.0])
    np.testing.assert_allclose(out[OBSERVED + "tenure_days"], [1.0, 100 / 135, 1.0, 0.5])
    np.testing.assert_allclose(out[OBSERVED + "purchases_total"], [6 * 365 / 60, 6 * 365 / 135, 6 * 365 / 135,
                                                                    6 * 365 / 400])
    pd.testing.assert_frame_equal(out[frame.columns], frame)  # the baselines' inputs are untouched


def test_the_rolling_origins_table_shows_each_data_set_measured_or_why_not():
    from churn.quality import origins_markdown

    m = {"roc_auc": 0.8, "pr_auc": 0.6, "brier": 0.15, "calibration_error": 0.02}
    measured = {"origins": [{"validation_cutoff": "2024-10-01", "n": 900, "base_rate": 0.4, "scorers": {},
                             "train_cutoffs": 4, "train_rows": 9657},
                            {"validation_cutoff": "2024-09-01", "n": 880, "base_rate": 0.45, "scorers": {},
                             "train_cutoffs": 1, "train_rows": 1950}],
                "unmeasured": ["not enough history"], "mean": {"logistic_rfm": {**m, "roc_auc": 0.78}, "model": m},
                "versus": {"roc_auc": {"baseline": "logistic_rfm", "diff": 0.02, "low": 0.01, "high": 0.03},
                           "pr_auc": {"baseline": "logistic_rfm", "diff": -0.01, "low": -0.03, "high": 0.01}}}
    sets = (DataSet("a", "A", (), 90), DataSet("b", "B", (), 30), DataSet("c", "C", (), 90))
    lines = origins_markdown({"a": {"origins": measured}, "b": {"origins": {"origins": [], "unmeasured": [
        "not enough history: the store starts 2017-01-01"]}}}, sets)
    rows = [line for line in lines if line.startswith("| a") or line.startswith("| b") or line.startswith("|  |")]
    assert rows[0].startswith("| a | 2: 2024-10-01 (40.0%; 4, 9,657), 2024-09-01 (45.0%; 1, 1,950); 1 earlier: not "
                              "enough history | "
                              "model (XGBoost) | 0.8000 |")  # the model first, whatever order the results hold
    assert "+0.0200 [+0.0100, +0.0300] vs logistic RFM" in rows[0] and "-0.0100 [-0.0300, +0.0100]" in rows[0]
    assert rows[1].startswith("|  |  | logistic RFM | 0.7800 |")
    assert rows[2] == "| b | unmeasured: not enough history: the store starts 2017-01-01 | | | | | | | |"
    assert not any(line.startswith("| c") for line in lines)  # not run: no row
