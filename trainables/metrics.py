"""Validation metrics of a binary classifier, minority (label 1) as the positive class."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    fbeta_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

# Subtracted from a degenerate model's metric: [0, 1] becomes [-2, -1], below every honest model.
GUARD_PENALTY = 2.0

# Ties on the objective are common (several models find every validation
# positive). The final ranking breaks them by these metrics, in this order, and
# so do the search's scheduler and searcher (see tiebroken_objective).
TIE_BREAKERS = ("val_balanced_accuracy", "val_auc")
_TIE_WEIGHTS = (1e-3, 1e-6)

# Metrics a search may optimise, and their direction.
METRIC_MODES = {
    "val_recall": "max",
    "val_precision": "max",
    "val_f1": "max",
    "val_f2": "max",
    "val_auc": "max",
    "val_ap": "max",
    "val_balanced_accuracy": "max",
    "val_accuracy": "max",
    "val_loss": "min",
}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, *, prefix: str = "") -> dict[str, float]:
    """Recall, precision, F1, F2, ROC AUC, average precision and accuracies of the positive class.

    ``y_pred`` are hard predictions in {0, 1}; ``y_score`` the positive-class
    probability, for the ranking metrics. ``predicted_positive_rate`` is there
    to show at a glance a model that calls everything positive.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    both_classes = len(np.unique(y_true)) == 2
    metrics = {
        "recall": recall_score(y_true, y_pred, zero_division=0),
        "precision": precision_score(y_true, y_pred, zero_division=0),
        "f1": f1_score(y_true, y_pred, zero_division=0),
        "f2": fbeta_score(y_true, y_pred, beta=2, zero_division=0),
        "auc": roc_auc_score(y_true, y_score) if both_classes else math.nan,
        "ap": average_precision_score(y_true, y_score) if both_classes else math.nan,
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred) if both_classes else math.nan,
        "accuracy": accuracy_score(y_true, y_pred),
        "predicted_positive_rate": float(np.mean(y_pred == 1)),
    }
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def guarded_objective(metrics: dict[str, float], *, metric: str, mode: str, min_balanced_accuracy: float) -> float:
    """The value a search ranks trials by: ``metrics[metric]``, demoted when the model is degenerate.

    A model that predicts every image as positive has recall 1.0 and balanced
    accuracy 0.5. For a metric maximised in [0, 1], a model whose balanced
    accuracy is below ``min_balanced_accuracy`` scores ``value - GUARD_PENALTY``:
    still ordered among the failures, but below every model that passes the floor.
    Metrics minimised (losses) are not guarded.
    """
    value = metrics[metric]
    if mode == "min" or min_balanced_accuracy <= 0:
        return value
    balanced = metrics.get("val_balanced_accuracy", math.nan)
    passes = not math.isnan(balanced) and balanced >= min_balanced_accuracy
    return value if passes else value - GUARD_PENALTY


def tiebroken_objective(objective: float, metrics: dict[str, float], *, mode: str) -> float:
    """``objective`` nudged towards the better :data:`TIE_BREAKERS`, for schedulers and searchers that see one number.

    The nudge is at most 0.001001: it never reorders objective values further
    apart than that (recall on up to 999 validation positives), so it only
    orders trials the objective alone calls equal, as :data:`TIE_BREAKERS` do.
    """
    nudge = sum(weight * _or_zero(metrics.get(key)) for key, weight in zip(TIE_BREAKERS, _TIE_WEIGHTS, strict=True))
    return objective + nudge if mode == "max" else objective - nudge


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None or math.isnan(value) else value
