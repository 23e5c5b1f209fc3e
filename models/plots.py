"""Evaluation plots as matplotlib figures (the flow logs them; nothing here writes files)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve  # noqa: E402

from models.evaluate import calibration_table  # noqa: E402


def _scored(preds: pd.DataFrame):
    """(name, y, p) per scorer, as numpy arrays, over the rows that scorer scored."""
    for name in (c for c in preds.columns if c not in ("customer_id", "y")):
        ok = preds[name].notna()
        yield name, preds.loc[ok, "y"].to_numpy(), preds.loc[ok, name].to_numpy()


def roc_pr_figure(preds: pd.DataFrame, label: str = ""):
    """ROC and precision-recall curves of the model and every baseline on the validation snapshot, each
    legend entry with its area (ROC-AUC; PR-AUC as average precision)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, y, p in _scored(preds):
        fpr, tpr, _ = roc_curve(y, p)
        prec, rec, _ = precision_recall_curve(y, p)
        a.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
        b.plot(rec, prec, label=f"{name} (AP {average_precision_score(y, p):.3f})")
    a.plot([0, 1], [0, 1], "k:", lw=0.8)
    a.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    b.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    a.legend(fontsize=8, loc="lower right")
    b.legend(fontsize=8, loc="upper right")
    _title(fig, label)
    return fig


def _title(fig, label: str) -> None:
    """The run's label (model version, validation date, horizon) above the figure."""
    if label:
        fig.suptitle(label, fontsize=10)
    fig.tight_layout()


def gain_figure(preds: pd.DataFrame, label: str = ""):
    """Cumulative gain: share of churners found when contacting the top x% by score."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, y, p in _scored(preds):
        y = y[np.argsort(-p, kind="stable")]
        x = np.arange(1, len(y) + 1) / len(y)
        ax.plot(x, np.cumsum(y) / max(1, y.sum()), label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="random")
    ax.set(xlabel="share of customers contacted (by score)", ylabel="share of churners reached", title="Gain chart")
    ax.legend(fontsize=8)
    _title(fig, label)
    return fig


def calibration_figure(preds: pd.DataFrame, label: str = ""):
    """Observed churn rate vs mean predicted probability per score decile."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, p in _scored(preds):
        cal = calibration_table(y, p)
        ax.plot(cal["predicted"], cal["observed"], marker="o", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted P(churn)", ylabel="observed churn rate", title="Calibration (deciles)")
    ax.legend(fontsize=8)
    _title(fig, label)
    return fig


def importance_figure(importance: pd.Series, label: str = ""):
    """Each feature's share of the total gain, on a log scale (one feature often takes most of the gain; on a
    linear scale the others would be invisible); features the trees never split on are listed as unused."""
    share = (importance / max(float(importance.sum()), 1e-300) * 100).sort_values()
    used = share[share > 0]
    fig, ax = plt.subplots(figsize=(7, 0.28 * max(len(used), 1) + 1.6))
    ax.barh(used.index, used.to_numpy())
    ax.set_xscale("log")
    if len(used):  # bars grow from the left edge: set it below the smallest share, room for the labels on the right
        ax.set_xlim(float(used.min()) / 3, 300)
    for i, v in enumerate(used.to_numpy()):
        ax.text(v, i, f" {v:.3g} %", va="center", fontsize=7)
    unused = list(share.index[share <= 0])
    ax.set(xlabel="share of total gain, % (log scale)", title="Feature importance"
           + (f"\n(unused: {', '.join(unused)})" if unused else ""))
    _title(fig, label)
    return fig


def training_figures(preds: pd.DataFrame, importance: pd.Series, label: str = "") -> dict:
    """The training run's figures by file name: ROC/PR, gain, calibration, feature importance, each titled
    with `label` (model version, validation date, horizon)."""
    return {"roc_pr.png": roc_pr_figure(preds, label), "gain.png": gain_figure(preds, label),
            "calibration.png": calibration_figure(preds, label),
            "feature_importance.png": importance_figure(importance, label)}


def score_distribution_figure(p: pd.Series, as_of: str):
    """Histogram of P(churn) over every scored customer."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(p, bins=50)
    ax.set(xlabel="P(churn)", ylabel="customers", title=f"Scores as of {as_of}")
    fig.tight_layout()
    return fig


def roc_auc_over_time_figure(history: pd.DataFrame, label: str = ""):
    """ROC-AUC by scored day: realised (horizon passed), estimated from the scores (label-free), and the model
    version's training (validation) estimate. `history`: as_of, model_version, realised_roc_auc,
    expected_roc_auc, training_roc_auc (NaN where unknown)."""
    h = history.assign(as_of=pd.to_datetime(history["as_of"])).sort_values("as_of")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(h["as_of"], h["realised_roc_auc"], "o-", label="realised (labels known)")
    ax.plot(h["as_of"], h["expected_roc_auc"], "s--", alpha=0.7, label="estimated from the scores (no labels)")
    ax.plot(h["as_of"], h["training_roc_auc"], "k:", drawstyle="steps-post", label="training estimate (validation)")
    for _, r in h.iterrows():
        ax.annotate(f"v{r['model_version']}", (r["as_of"], r["expected_roc_auc"]), fontsize=7,
                    textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set(xlabel="scored day (as of)", ylabel="ROC-AUC", title="Model quality by scored day")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    _title(fig, label)
    return fig


def realised_calibration_figure(calibration: pd.DataFrame, label: str = ""):
    """Mean predicted vs observed churn rate per score decile of one scored day."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(calibration["predicted"], calibration["observed"], "o-", label="by score decile")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.set(xlabel="mean P(churn)", ylabel="observed churn rate", title="Realised calibration", xlim=(0, 1),
           ylim=(0, 1))
    ax.legend(fontsize=8)
    _title(fig, label)
    return fig


def campaign_retention_figure(outcomes: pd.DataFrame, label: str = "", confidence: float = 0.95):
    """A list's retention in the outcome window, target vs control per risk tier and overall, each bar with its
    Wilson interval (rows of models.outcomes.customer_outcomes)."""
    from expectations.scores import RISK_TIERS
    from models.outcomes import CONTROL, TARGET, wilson_interval

    tiers = ["all", *(t for t in RISK_TIERS if (outcomes["risk_tier"] == t).any())]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(tiers) + 2), 4.5))
    x = np.arange(len(tiers))
    for k, group in enumerate((TARGET, CONTROL)):
        rates, errors = [], [[], []]
        for tier in tiers:
            part = outcomes[(outcomes["group"] == group) & ((outcomes["risk_tier"] == tier) | (tier == "all"))]
            n, hits = len(part), int(part["retained"].sum())
            rate = hits / n if n else np.nan
            lo, hi = wilson_interval(hits, n, confidence)
            rates.append(rate)
            errors[0].append(rate - lo if n else 0)
            errors[1].append(hi - rate if n else 0)
        ax.bar(x + (k - 0.5) * 0.38, rates, 0.38, yerr=errors, capsize=4, label=f"{group}")
    ax.set_xticks(x, [f"{t}\n(n={int((outcomes['risk_tier'] == t).sum()) if t != 'all' else len(outcomes)})"
                      for t in tiers])
    ax.set(ylabel="retained (any activity in the window)", ylim=(0, 1.05),
           title=f"Retention, target vs control ({confidence:.0%} Wilson intervals)")
    ax.legend(fontsize=8)
    _title(fig, label)
    return fig
