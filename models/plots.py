"""Evaluation plots as matplotlib figures (the flow logs them; nothing here writes files)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from models.evaluate import calibration_table  # noqa: E402


def _scored(preds: pd.DataFrame):
    """(name, y, p) per scorer, as numpy arrays, over the rows that scorer scored."""
    for name in (c for c in preds.columns if c not in ("customer_id", "y")):
        ok = preds[name].notna()
        yield name, preds.loc[ok, "y"].to_numpy(), preds.loc[ok, name].to_numpy()


def roc_pr_figure(preds: pd.DataFrame):
    """ROC and precision-recall curves of the model and every baseline on the validation snapshot."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, y, p in _scored(preds):
        fpr, tpr, _ = roc_curve(y, p)
        prec, rec, _ = precision_recall_curve(y, p)
        a.plot(fpr, tpr, label=name)
        b.plot(rec, prec, label=name)
    a.plot([0, 1], [0, 1], "k:", lw=0.8)
    a.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    b.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gain_figure(preds: pd.DataFrame):
    """Cumulative gain: share of churners found when contacting the top x% by score."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, y, p in _scored(preds):
        y = y[np.argsort(-p, kind="stable")]
        x = np.arange(1, len(y) + 1) / len(y)
        ax.plot(x, np.cumsum(y) / max(1, y.sum()), label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="random")
    ax.set(xlabel="share of customers contacted (by score)", ylabel="share of churners reached", title="Gain chart")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration_figure(preds: pd.DataFrame):
    """Observed churn rate vs mean predicted probability per score decile."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, p in _scored(preds):
        cal = calibration_table(y, p)
        ax.plot(cal["predicted"], cal["observed"], marker="o", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted P(churn)", ylabel="observed churn rate", title="Calibration (deciles)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series):
    """Total gain per feature."""
    imp = importance.sort_values()
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(imp) + 1))
    ax.barh(imp.index, imp.to_numpy())
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    return fig


def training_figures(preds: pd.DataFrame, importance: pd.Series) -> dict:
    """The training run's figures by file name: ROC/PR, gain, calibration, feature importance."""
    return {"roc_pr.png": roc_pr_figure(preds), "gain.png": gain_figure(preds),
            "calibration.png": calibration_figure(preds), "feature_importance.png": importance_figure(importance)}


def score_distribution_figure(p: pd.Series, as_of: str):
    """Histogram of P(churn) over every scored customer."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(p, bins=50)
    ax.set(xlabel="P(churn)", ylabel="customers", title=f"Scores as of {as_of}")
    fig.tight_layout()
    return fig
