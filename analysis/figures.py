"""Figures of the report: confusion matrix, ROC, precision-recall, learning curves.

Every function takes arrays or DataFrames and returns a matplotlib Figure;
nothing here reads files or touches Ray.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

from analysis.tables import require_columns  # noqa: E402


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], *, title: str) -> Figure:
    """Confusion matrix with counts, rows = true class."""
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=[0, 1], display_labels=list(class_names),
                                            ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str) -> Figure:
    """Precision-recall curves (label -> (y_true, y_score)) with average precision and the prevalence baseline."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    prevalence = None
    for label, (y_true, y_score) in curves.items():
        PrecisionRecallDisplay.from_predictions(y_true, y_score, name=label, ax=ax)
        prevalence = float(np.mean(y_true))
    if prevalence is not None:
        ax.axhline(prevalence, color="grey", linestyle="--", linewidth=1, label=f"chance (prevalence {prevalence:.2f})")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str) -> Figure:
    """ROC curves (label -> (y_true, y_score)) with AUC and the chance diagonal."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for label, (y_true, y_score) in curves.items():
        RocCurveDisplay.from_predictions(y_true, y_score, name=label, ax=ax)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def learning_curves_figure(epochs: pd.DataFrame, *, title: str) -> Figure:
    """Train/val loss and val recall per epoch of one trial, the kept epoch marked."""
    require_columns(epochs, ["training_iteration", "train_loss", "val_loss", "val_recall"], what="epochs")
    fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(8, 3.2))
    x = epochs["training_iteration"]
    loss_ax.plot(x, epochs["train_loss"], marker=".", label="train loss")
    loss_ax.plot(x, epochs["val_loss"], marker=".", label="val loss")
    recall_ax.plot(x, epochs["val_recall"], marker=".", color="tab:green", label="val recall")
    if "kept_epoch" in epochs and len(epochs):
        for ax in (loss_ax, recall_ax):
            ax.axvline(epochs["kept_epoch"].iloc[-1], color="grey", linestyle=":", label="kept epoch")
    loss_ax.set_xlabel("epoch")
    recall_ax.set_xlabel("epoch")
    recall_ax.set_ylim(-0.02, 1.02)
    loss_ax.legend(fontsize=8)
    recall_ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def all_trials_figure(epochs: pd.DataFrame, *, metric: str, title: str) -> Figure:
    """Every trial's validation metric over epochs: where a line ends is where the trial stopped."""
    require_columns(epochs, ["trial_id", "training_iteration", metric], what="epochs")
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, trial in epochs.groupby("trial_id", sort=False):
        ax.plot(trial["training_iteration"], trial[metric], linewidth=1, alpha=0.6)
        ax.plot(trial["training_iteration"].iloc[-1], trial[metric].iloc[-1], "k.", markersize=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
