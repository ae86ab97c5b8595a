"""Uncertainty of a metric measured on a handful of images: stratified percentile bootstrap intervals.

One implementation for the search (the delivered model's estimates in
best.json and its card, the paired comparisons of search.comparison) and
the analysis (the report's intervals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from trainables.operating import conformal_rank


def bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, *, n_resamples: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals of minority recall, precision, F1 and AUC.

    Resamples are stratified by class, so each holds the split's class counts
    and every metric is defined in every resample. All resamples are scored at
    once: recall, precision and F1 from confusion counts, AUC from ranks
    (the Mann-Whitney statistic, ties counted half, as scikit-learn does).
    """
    y_true, y_pred, y_score = map(np.asarray, (y_true, y_pred, y_score))
    idx = stratified_resamples(y_true, n_resamples=n_resamples, seed=seed)
    draws = _resampled_metrics(y_true, y_pred, y_score, idx, ("recall", "precision", "f1", "auc"))
    estimates = {
        "recall": recall_score(y_true, y_pred, zero_division=0),
        "precision": precision_score(y_true, y_pred, zero_division=0),
        "f1": f1_score(y_true, y_pred, zero_division=0),
        "auc": roc_auc_score(y_true, y_score),
    }
    tail = (1 - confidence) / 2 * 100
    rows = [{"metric": k, "estimate": estimates[k], **dict(zip(("low", "high"), np.percentile(v, [tail, 100 - tail]),
                                                               strict=True))}
            for k, v in draws.items()]
    return pd.DataFrame(rows).set_index("metric")


# Metrics bootstrap_metric resamples, by the names the trainable reports them under (without "val_").
BOOTSTRAP_METRICS = ("recall", "precision", "specificity", "f1", "f2", "balanced_accuracy", "accuracy", "auc", "ap")
# Also resampled for paired comparisons (they need the target recall of the operating point).
AT_RECALL_METRICS = ("specificity_at_recall", "precision_at_recall")


def stratified_resamples(y_true: np.ndarray, *, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n_resamples`` bootstrap resamples, ``(n_resamples, n)``: the negatives' draws, then the positives'.

    Each resample holds the split's class counts, so every metric is defined in every resample.
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(np.asarray(y_true) == c) for c in (0, 1)]
    return np.concatenate([rng.choice(m, size=(n_resamples, len(m)), replace=True) for m in by_class], axis=1)


def _resampled_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, idx: np.ndarray,
                       names: Sequence[str], target_recall: float | None = None) -> dict[str, np.ndarray]:
    """Each metric of ``names`` in every resample (rows of ``idx``), from confusion counts and ranks at once.

    AUC is the Mann-Whitney statistic (ties counted half, as scikit-learn
    does), which needs the negatives first in each row (stratified_resamples).
    Average precision has no closed form over counts: it is computed per resample.
    The ``*_at_recall`` metrics are those of trainables.operating.operating_point
    at ``target_recall`` (the m-th highest positive score of each resample as
    the threshold), and ``loss`` the mean cross-entropy of the probabilities.
    """
    n_neg = int((y_true == 0).sum())
    n_pos = len(y_true) - n_neg
    truth, pred = y_true[idx] == 1, y_pred[idx] == 1
    tp = (truth & pred).sum(axis=1)
    fp = (~truth & pred).sum(axis=1)
    fn = (truth & ~pred).sum(axis=1)
    tn = idx.shape[1] - tp - fp - fn
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        formulas = {
            "recall": lambda: tp / (tp + fn),
            "precision": lambda: tp / (tp + fp),
            "f1": lambda: 2 * tp / (2 * tp + fp + fn),
            "f2": lambda: 5 * tp / (5 * tp + 4 * fn + fp),
            "specificity": lambda: tn / (tn + fp),
            "balanced_accuracy": lambda: (tp / (tp + fn) + tn / (tn + fp)) / 2,
            "accuracy": lambda: (tp + tn) / idx.shape[1],
            "auc": lambda: (rankdata(y_score[idx], axis=1)[:, n_neg:].sum(axis=1) - n_pos * (n_pos + 1) / 2)
            / (n_pos * n_neg),
            "ap": lambda: np.array([average_precision_score(y_true[row], y_score[row]) for row in idx]),
            "specificity_at_recall": lambda: _at_recall(y_score[idx], n_neg, target_recall)[0],
            "precision_at_recall": lambda: _at_recall(y_score[idx], n_neg, target_recall)[1],
            "loss": lambda: _cross_entropy(y_true, y_score)[idx].mean(axis=1),
        }
        for name in names:
            out[name] = np.nan_to_num(formulas[name]())  # zero_division=0, as scikit-learn's scores
    return out


def _every_image_once(y_true: np.ndarray) -> np.ndarray:
    """The split itself as one "resample" (negatives first, as _resampled_metrics wants): its observed metrics."""
    return np.concatenate([np.flatnonzero(y_true == 0), np.flatnonzero(y_true == 1)])[None]


def _at_recall(scores: np.ndarray, n_neg: int, target_recall: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Specificity and precision per row at the split-conformal threshold (rows: negatives' scores, then positives')."""
    if target_recall is None:
        raise ValueError("the *_at_recall metrics need target_recall")
    negatives, positives = scores[:, :n_neg], scores[:, n_neg:]
    m = conformal_rank(positives.shape[1], target_recall)
    threshold = -np.sort(-positives, axis=1)[:, m - 1 : m]
    fp, tp = (negatives >= threshold).sum(axis=1), (positives >= threshold).sum(axis=1)
    return 1 - fp / max(n_neg, 1), tp / (tp + fp)


def _cross_entropy(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Each image's cross-entropy given its positive-class probability (clipped away from 0 and 1)."""
    p = np.clip(np.where(np.asarray(y_true) == 1, y_score, 1 - y_score), 1e-7, 1.0)
    return -np.log(p)


@dataclass(frozen=True)
class Difference:
    """A paired difference of one metric between two models (a minus b), with its 95 % interval and p-value."""

    estimate: float
    low: float
    high: float
    p_value: float  # two-sided, from the bootstrap distribution of the difference
    images: int  # held-out images per unit, summed over units
    units: int  # the (seed, fold) pairs the difference averages over

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (p < 0.05 for the 95 % interval)."""
        return not (self.low <= 0 <= self.high)

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def unit_resamples(units: Sequence[np.ndarray], *, n_resamples: int, seed: int = 0) -> list[np.ndarray]:
    """Stratified resample indices for each unit's labels: draw ``d`` of every unit together makes draw ``d``."""
    return [stratified_resamples(y_true, n_resamples=n_resamples, seed=seed + i) for i, y_true in enumerate(units)]


def resampled_mean(units: Sequence[tuple[np.ndarray, np.ndarray]], resamples: Sequence[np.ndarray], *, metric: str,
                   target_recall: float | None = None) -> tuple[float, np.ndarray]:
    """A metric's mean over units ((y_true, y_score) each, at 0.5 where it needs a cut), and that mean in each draw.

    Models scored on the same units resampled with the same ``resamples``
    (:func:`unit_resamples`) are compared draw by draw: a paired bootstrap.
    """
    name = metric.removeprefix("kept_").removeprefix("val_")
    observed, draws = [], []
    for (y_true, y_score), idx in zip(units, resamples, strict=True):
        y_true, y_score = np.asarray(y_true), np.asarray(y_score)
        y_pred = (y_score > 0.5).astype(int)
        observed.append(_resampled_metrics(y_true, y_pred, y_score, _every_image_once(y_true), [name],
                                           target_recall)[name][0])
        draws.append(_resampled_metrics(y_true, y_pred, y_score, idx, [name], target_recall)[name])
    return float(np.mean(observed)), np.mean(draws, axis=0)


def paired_difference(a: tuple[float, np.ndarray], b: tuple[float, np.ndarray], *, images: int, units: int,
                      confidence: float = 0.95) -> Difference:
    """a minus b, from two :func:`resampled_mean` results on the same resamples; percentile interval, two-sided p."""
    diffs = a[1] - b[1]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    # The share of draws on the other side of 0 from the estimate, both tails, with the add-one correction
    # of a Monte Carlo p-value (so that it is never 0).
    below, above = int((diffs <= 0).sum()), int((diffs >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1))
    return Difference(float(a[0] - b[0]), float(low), float(high), p if not math.isnan(p) else 1.0, images, units)


def bootstrap_metric(
    y_true: np.ndarray, y_score: np.ndarray, *, metric: str, n_resamples: int = 1000, confidence: float = 0.95,
    seed: int = 0, threshold: float | None = None,
) -> tuple[float, float, float]:
    """(estimate, low, high): one metric of a split and its stratified percentile bootstrap interval.

    ``metric`` is named as the trainable reports it (``val_recall``,
    ``kept_val_auc`` or plain ``recall``; see :data:`BOOTSTRAP_METRICS`).
    Hard predictions are the argmax decision (probability > 0.5), as in the
    search, or ``score >= threshold`` when one is given. Used where a configuration has no folds or seeds to vary over:
    the interval says how much the validation estimate would move with
    another draw of validation images.
    """
    name = metric.removeprefix("kept_").removeprefix("val_")
    if name not in BOOTSTRAP_METRICS:
        raise ValueError(f"no bootstrap for metric {metric!r}; choose from {', '.join(BOOTSTRAP_METRICS)}")
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    y_pred = (y_score > 0.5 if threshold is None else y_score >= threshold).astype(int)
    estimate = float(_resampled_metrics(y_true, y_pred, y_score, _every_image_once(y_true), [name])[name][0])
    draws = _resampled_metrics(y_true, y_pred, y_score,
                               stratified_resamples(y_true, n_resamples=n_resamples, seed=seed), [name])[name]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return estimate, float(low), float(high)
