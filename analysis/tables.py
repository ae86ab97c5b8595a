"""Comparison tables and test-split statistics, from DataFrames and arrays only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, roc_curve

from search.results import GROUPS, best_per_group, objective_in_words
from trainables.uncertainty import BOOTSTRAP_METRICS, bootstrap_intervals, bootstrap_metric, stratified_resamples

__all__ = [
    "BOOTSTRAP_METRICS", "GROUPS", "best_per_group", "bootstrap_intervals", "bootstrap_metric", "confusion_frame",
    "objective_in_words", "report_frame", "report_text", "require_columns", "stratified_resamples", "threshold_sweep",
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
