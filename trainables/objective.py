"""What a search ranks trials by: the chosen metric, guarded against degenerate models, with its tie-breakers."""

from __future__ import annotations

import math

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
