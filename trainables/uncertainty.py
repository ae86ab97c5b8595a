"""Uncertainty of a metric measured on a handful of images: stratified percentile bootstrap intervals.

One implementation for the search (the delivered model's estimates in
best.json and its card) and the analysis (the report's intervals).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score


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


def stratified_resamples(y_true: np.ndarray, *, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n_resamples`` bootstrap resamples, ``(n_resamples, n)``: the negatives' draws, then the positives'.

    Each resample holds the split's class counts, so every metric is defined in every resample.
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(np.asarray(y_true) == c) for c in (0, 1)]
    return np.concatenate([rng.choice(m, size=(n_resamples, len(m)), replace=True) for m in by_class], axis=1)


def _resampled_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, idx: np.ndarray,
                       names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each metric of ``names`` in every resample (rows of ``idx``), from confusion counts and ranks at once.

    AUC is the Mann-Whitney statistic (ties counted half, as scikit-learn
    does), which needs the negatives first in each row (stratified_resamples).
    Average precision has no closed form over counts: it is computed per resample.
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
        }
        for name in names:
            out[name] = np.nan_to_num(formulas[name]())  # zero_division=0, as scikit-learn's scores
    return out


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
    everything = np.concatenate([np.flatnonzero(y_true == 0), np.flatnonzero(y_true == 1)])[None]
    estimate = float(_resampled_metrics(y_true, y_pred, y_score, everything, [name])[name][0])
    draws = _resampled_metrics(y_true, y_pred, y_score,
                               stratified_resamples(y_true, n_resamples=n_resamples, seed=seed), [name])[name]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return estimate, float(low), float(high)
