import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from analysis import best_per_group, bootstrap_intervals, confusion_frame, report_frame, report_text

# A fixed prediction set: TP 3, FN 1, FP 2, TN 4.
Y_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
Y_PRED = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
Y_SCORE = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.35])
NAMES = ("healthy", "sick")


def test_classification_report_matches_hand_computed_values():
    report = report_frame(Y_TRUE, Y_PRED, NAMES)
    assert report.loc["sick", "precision"] == 0.6 and report.loc["sick", "recall"] == 0.75
    assert report.loc["sick", "f1-score"] == round(2 * 0.6 * 0.75 / 1.35, 4) == 0.6667
    assert report.loc["healthy", "precision"] == 0.8 and report.loc["healthy", "recall"] == 0.6667
    assert report.loc["accuracy", "f1-score"] == 0.7 and report.loc["sick", "support"] == 4
    text = report_text(Y_TRUE, Y_PRED, NAMES)
    assert "0.6000    0.7500    0.6667         4" in text  # the study's four decimals


def test_confusion_matrix_rows_are_true_classes():
    frame = confusion_frame(Y_TRUE, Y_PRED, NAMES)
    assert frame.values.tolist() == [[4, 2], [1, 3]]
    assert frame.index.tolist() == ["true healthy", "true sick"]


def test_bootstrap_interval_contains_the_point_estimate():
    intervals = bootstrap_intervals(Y_TRUE, Y_PRED, Y_SCORE, n_resamples=500)
    assert intervals.loc["auc", "estimate"] == pytest.approx(21 / 24)  # 21 of 24 pairs ordered
    assert intervals.loc["recall", "estimate"] == 0.75
    assert ((intervals["low"] <= intervals["estimate"]) & (intervals["estimate"] <= intervals["high"])).all()
    assert (intervals["low"] < intervals["high"]).all()


def test_bootstrap_auc_counts_ties_like_scikit_learn():
    tied = np.full(10, 0.5)
    assert roc_auc_score(Y_TRUE, tied) == 0.5
    intervals = bootstrap_intervals(Y_TRUE, Y_PRED, tied, n_resamples=50)
    assert intervals.loc["auc", ["low", "high"]].tolist() == [0.5, 0.5]
    separated = bootstrap_intervals(Y_TRUE, Y_TRUE, Y_TRUE.astype(float), n_resamples=50)
    assert separated.loc["auc", ["low", "estimate", "high"]].tolist() == [1.0, 1.0, 1.0]


def test_best_per_group_keeps_one_row_per_group_best_first():
    trials = pd.DataFrame({
        "config/architecture": ["cnn", "cnn", "cnn_bn", "cnn_bn"],
        "config/strategy": ["none"] * 4,
        "objective": [0.7, 0.9, 0.8, float("nan")],
        "trial_id": ["a", "b", "c", "d"],
    })
    best = best_per_group(trials)
    assert best["trial_id"].tolist() == ["b", "c"]


def test_missing_column_lists_what_is_there():
    with pytest.raises(ValueError, match="lack column.*objective; available: trial_id"):
        best_per_group(pd.DataFrame({"trial_id": ["a"]}))
