"""Validation metrics of a binary classifier, minority (label 1) as the positive class."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

# Subtracted from a degenerate model's metric: [0, 1] becomes [-2, -1], below every honest model.
GUARD_PENALTY = 2.0

# Ties on the objective are common (several models find every validation
# positive). The final ranking breaks them by these metrics, in this order, and
# so do the search's scheduler and searcher (see tiebroken_objective).
TIE_BREAKERS = ("val_balanced_accuracy", "val_auc")
_TIE_WEIGHTS = (1e-3, 1e-6)

# Metrics a search may optimise, and their direction.
METRIC_MODES = {
    "val_specificity_at_recall": "max",
    "val_precision_at_recall": "max",
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


# Metrics of the scores' ranking, not of a 0.5 cut: a model that calls every image positive
# gains nothing on them (its scores do not separate the classes), so they need no guard.
SCORE_METRICS = frozenset({"val_auc", "val_ap", "val_specificity_at_recall", "val_precision_at_recall"})


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, *, prefix: str = "",
                           target_recall: float | None = None) -> dict[str, float]:
    """Recall, precision, F1, F2, ROC AUC, average precision and accuracies of the positive class.

    ``y_pred`` are hard predictions in {0, 1}; ``y_score`` the positive-class
    probability, for the ranking metrics. ``predicted_positive_rate`` is there
    to show at a glance a model that calls everything positive. Computed from
    the confusion counts with numpy, as scikit-learn defines them (zero where
    a ratio is 0/0), because scikit-learn's input validation cost 14 % of a
    small GPU trial's epoch; tests check every value against scikit-learn.
    With ``target_recall``, also the operating point of :func:`operating_point`.
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


def operating_point(y_true: np.ndarray, y_score: np.ndarray, *, target_recall: float) -> dict[str, float]:
    """The highest threshold whose recall on new positives reaches ``target_recall``, with precision and specificity.

    A positive is called when ``score >= threshold``. A new positive,
    exchangeable with the P it is set on, scores at or above the m-th highest
    of them with probability m / (P + 1); so the threshold is the m-th highest
    positive score with m = ceil(target * (P + 1)) (split conformal), not
    ceil(target * P), which reaches the target on these P but promises about
    1 / (P + 1) too much on new images (all P when the target is out of reach).
    Unlike recall at a 0.5 cut, which moves in steps of one positive,
    specificity at a fixed recall moves in steps of one negative (the larger
    class), and it cannot be won by calling everything positive.
    """
    thresholds, tps, fps = _counts_above_each_threshold(y_true, y_score)
    needed = conformal_rank(int(tps[-1]), target_recall)
    reached = int(np.argmax(tps >= needed))  # the first (highest) threshold that does
    return {
        "threshold_at_recall": float(thresholds[reached]),
        "precision_at_recall": float(tps[reached] / (tps[reached] + fps[reached])),
        "specificity_at_recall": float(1 - fps[reached] / max(fps[-1], 1)),
    }


def conformal_rank(positives: int, target_recall: float) -> int:
    """m = ceil(target x (P + 1)), at most P: the rank among P positive scores that the operating threshold takes."""
    return min(math.ceil(target_recall * (positives + 1) - 1e-9), positives)


def _counts_above_each_threshold(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each distinct score, highest first, and the true and false positives at ``score >= it``."""
    order = np.argsort(-np.asarray(y_score), kind="mergesort")
    scores, truth = np.asarray(y_score)[order], np.asarray(y_true).astype(bool)[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(truth)[last_of_each_score]
    return scores[last_of_each_score], tps, last_of_each_score + 1 - tps


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative, ties counting half."""
    truth = np.asarray(y_true).astype(bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    ranks = rankdata(y_score)  # average ranks, so ties count half
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision as scikit-learn computes it: precision summed over each recall step, no interpolation."""
    _, tps, fps = _counts_above_each_threshold(y_true, y_score)
    return float(np.sum(np.diff(tps / tps[-1], prepend=0.0) * tps / (tps + fps)))


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def guard_acts(metric: str, min_balanced_accuracy: float) -> bool:
    """Whether the degenerate-model guard demotes trials on ``metric``: not for ranking metrics, nor when it is 0."""
    return min_balanced_accuracy > 0 and metric not in SCORE_METRICS


def passes_guard(metrics: dict[str, float], min_balanced_accuracy: float) -> bool:
    """Whether the validation balanced accuracy clears ``min_balanced_accuracy`` (a NaN one does not)."""
    balanced = metrics.get("val_balanced_accuracy", math.nan)
    return not math.isnan(balanced) and balanced >= min_balanced_accuracy


def guarded_objective(metrics: dict[str, float], *, metric: str, mode: str, min_balanced_accuracy: float) -> float:
    """The value a search ranks trials by: ``metrics[metric]``, demoted when the model is degenerate.

    A model that predicts every image as positive has recall 1.0 and balanced
    accuracy 0.5. Where the guard acts (:func:`guard_acts`), a model whose
    balanced accuracy is below ``min_balanced_accuracy`` scores
    ``value - GUARD_PENALTY`` (``value + GUARD_PENALTY`` for a loss): still
    ordered among the failures, and for metrics in [0, 1] below every model
    that passes; the final ranking (search.results.rank_trials) puts every
    failure after every pass whatever the metric. Metrics of the scores'
    ranking (:data:`SCORE_METRICS`) are not guarded: calling everything
    positive gains nothing on them.
    """
    value = metrics[metric]
    if not guard_acts(metric, min_balanced_accuracy) or passes_guard(metrics, min_balanced_accuracy):
        return value
    return value + GUARD_PENALTY if mode == "min" else value - GUARD_PENALTY


def worst_objective(mode: str) -> float:
    """The objective of a trial that diverged (a loss or score that is not finite): below every other."""
    return -math.inf if mode == "max" else math.inf


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
