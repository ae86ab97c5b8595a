"""Comparison tables and test-split statistics, from DataFrames and arrays only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import (
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from search.results import GROUPS, best_per_group, objective_in_words
from trainables import guarded_objective

__all__ = [
    "GROUPS", "best_per_group", "bootstrap_intervals", "choose_threshold", "confusion_frame", "objective_in_words",
    "report_frame", "report_text", "require_columns",
]

REPORT_DIGITS = 4  # the study's classification reports have four decimals


def require_columns(frame: pd.DataFrame, columns: Sequence[str], *, what: str = "trials") -> None:
    """ValueError naming the missing and the available columns."""
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"{what} lack column(s) {', '.join(missing)}; available: {', '.join(map(str, frame.columns))}")


def report_text(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> str:
    """scikit-learn's ``classification_report`` with the study's four decimals."""
    return classification_report(y_true, y_pred, labels=[0, 1], target_names=list(class_names),
                                 digits=REPORT_DIGITS, zero_division=0)


def report_frame(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """The classification report as a DataFrame (rows: classes and averages), rounded to four decimals."""
    report = classification_report(y_true, y_pred, labels=[0, 1], target_names=list(class_names),
                                   output_dict=True, zero_division=0)
    accuracy = report.pop("accuracy")
    frame = pd.DataFrame(report).T
    frame.loc["accuracy"] = [np.nan, np.nan, accuracy, frame.loc["macro avg", "support"]]
    frame["support"] = frame["support"].astype(int)
    return frame.round(REPORT_DIGITS)


def confusion_frame(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Confusion matrix with named rows (true class) and columns (predicted class)."""
    matrix = confusion_matrix(y_true, y_pred, labels=[0, 1])
    return pd.DataFrame(matrix, index=[f"true {c}" for c in class_names], columns=[f"predicted {c}" for c in class_names])


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
BOOTSTRAP_METRICS = ("recall", "precision", "f1", "f2", "balanced_accuracy", "accuracy", "auc", "ap")


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
    seed: int = 0,
) -> tuple[float, float, float]:
    """(estimate, low, high): one metric of a split and its stratified percentile bootstrap interval.

    ``metric`` is named as the trainable reports it (``val_recall``,
    ``kept_val_auc`` or plain ``recall``; see :data:`BOOTSTRAP_METRICS`).
    Hard predictions are the argmax decision (probability > 0.5), as in the
    search. Used where a configuration has no folds or seeds to vary over:
    the interval says how much the validation estimate would move with
    another draw of validation images.
    """
    name = metric.removeprefix("kept_").removeprefix("val_")
    if name not in BOOTSTRAP_METRICS:
        raise ValueError(f"no bootstrap for metric {metric!r}; choose from {', '.join(BOOTSTRAP_METRICS)}")
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    y_pred = (y_score > 0.5).astype(int)
    everything = np.concatenate([np.flatnonzero(y_true == 0), np.flatnonzero(y_true == 1)])[None]
    estimate = float(_resampled_metrics(y_true, y_pred, y_score, everything, [name])[name][0])
    draws = _resampled_metrics(y_true, y_pred, y_score,
                               stratified_resamples(y_true, n_resamples=n_resamples, seed=seed), [name])[name]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return estimate, float(low), float(high)


def threshold_sweep(y_true: np.ndarray, y_score: np.ndarray) -> pd.DataFrame:
    """Threshold-dependent metrics at every distinct score (positive when ``score >= threshold``).

    Built on scikit-learn's ``roc_curve`` (every threshold kept); columns are
    named like the trainable's reports: ``val_recall``, ``val_precision``,
    ``val_f1``, ``val_f2``, ``val_balanced_accuracy``, ``val_accuracy``.
    """
    y_true = np.asarray(y_true)
    fpr, tpr, thresholds = roc_curve(y_true, y_score, drop_intermediate=False)
    positives, negatives = int((y_true == 1).sum()), int((y_true == 0).sum())
    tp, fp = tpr * positives, fpr * negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / (tp + fp))
        f1 = np.nan_to_num(2 * precision * tpr / (precision + tpr))
        f2 = np.nan_to_num(5 * precision * tpr / (4 * precision + tpr))
    frame = pd.DataFrame({
        "threshold": thresholds, "val_recall": tpr, "val_precision": precision, "val_f1": f1, "val_f2": f2,
        "val_balanced_accuracy": (tpr + 1 - fpr) / 2, "val_accuracy": (tp + negatives - fp) / len(y_true),
    })
    return frame[np.isfinite(frame["threshold"])]  # roc_curve's first row (threshold inf) predicts nothing


def choose_threshold(
    y_true: np.ndarray, y_score: np.ndarray, *, metric: str = "val_recall", min_balanced_accuracy: float = 0.6
) -> float | None:
    """The probability threshold that maximises the guarded metric on these (validation) labels.

    The same guard as the search: a threshold whose balanced accuracy is below
    ``min_balanced_accuracy`` loses to every one above it (so recall cannot win
    by calling everything positive). Ties go to the highest threshold, the most
    conservative. None for metrics a threshold does not change (AUC, AP, loss).
    """
    sweep = threshold_sweep(y_true, y_score)
    if metric not in sweep:
        return None
    values = [guarded_objective(row, metric=metric, mode="max", min_balanced_accuracy=min_balanced_accuracy)
              for row in sweep.to_dict("records")]
    return float(sweep["threshold"].iloc[int(np.argmax(values))])  # thresholds descend: first max is highest
