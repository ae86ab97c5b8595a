"""Validation metrics of a binary classifier, minority (label 1) as the positive class."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from trainables.operating import counts_above_each_threshold, operating_point


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, *, prefix: str = "",
                           target_recall: float | None = None) -> dict[str, float]:
    """Recall, precision, F1, F2, ROC AUC, average precision and accuracies of the positive class.

    ``y_pred`` are hard predictions in {0, 1}; ``y_score`` the positive-class
    probability, for the ranking metrics. ``predicted_positive_rate`` is there
    to show at a glance a model that calls everything positive. Computed from
    the confusion counts with numpy, as scikit-learn defines them (zero where
    a ratio is 0/0), because scikit-learn's input validation cost 14 % of a
    small GPU trial's epoch; tests check every value against scikit-learn.
    With ``target_recall``, also :func:`trainables.operating.operating_point` there.
    """
    truth, called = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    tp, fp = int(np.sum(truth & called)), int(np.sum(~truth & called))
    fn, tn = int(np.sum(truth & ~called)), int(np.sum(~truth & ~called))
    both_classes = tp + fn > 0 and tn + fp > 0
    recall = _ratio(tp, tp + fn)
    metrics = {
        "recall": recall,
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "f2": _ratio(5 * tp, 5 * tp + 4 * fn + fp),
        "auc": roc_auc(truth, y_score) if both_classes else math.nan,
        "ap": average_precision(truth, y_score) if both_classes else math.nan,
        "balanced_accuracy": (recall + _ratio(tn, tn + fp)) / 2 if both_classes else math.nan,
        "accuracy": _ratio(tp + tn, len(truth)),
        "predicted_positive_rate": _ratio(tp + fp, len(truth)),
    }
    if target_recall is not None:
        metrics.update(operating_point(truth, y_score, target_recall=target_recall) if both_classes else
                       {"threshold_at_recall": math.nan, "precision_at_recall": math.nan,
                        "specificity_at_recall": math.nan})
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative, ties counting half."""
    truth = np.asarray(y_true).astype(bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    ranks = rankdata(y_score)  # average ranks, so ties count half
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision as scikit-learn computes it: precision summed over each recall step, no interpolation."""
    _, tps, fps = counts_above_each_threshold(y_true, y_score)
    return float(np.sum(np.diff(tps / tps[-1], prepend=0.0) * tps / (tps + fps)))


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0
