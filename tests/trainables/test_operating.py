import math

import numpy as np
import pytest

from trainables.operating import OperatingPoint, operating_point, set_operating_point


def test_the_operating_point_is_the_metrics_threshold_with_its_rule_and_counts():
    rng = np.random.default_rng(0)
    y_true = np.r_[np.zeros(60), np.ones(20)].astype(int)
    y_score = np.r_[rng.uniform(0, 0.7, 60), rng.uniform(0.3, 1, 20)]
    point = set_operating_point(y_true, y_score, target_recall=0.9, scores="validation")
    assert point.threshold == operating_point(y_true, y_score, target_recall=0.9)["threshold_at_recall"]
    assert (point.positives, point.rank) == (20, 19)  # ceil(0.9 x 21) = 19
    assert point.expected_recall == pytest.approx(19 / 21)
    assert np.sum(y_score[y_true == 1] >= point.threshold) == 19
    assert OperatingPoint.from_json(point.to_json()) == point
    assert f"{point.threshold:.4f}" in point.describe() and "20 positives" in point.describe()


def test_the_recall_interval_covers_what_new_positives_give_over_calibration_draws():
    # Exchangeable scores: draw P calibration positives, set the threshold, measure recall on 2,000 new ones.
    rng = np.random.default_rng(1)
    recalls, point = [], None
    for _ in range(400):
        calibration = rng.normal(size=14)
        point = set_operating_point(np.r_[np.zeros(14), np.ones(14)].astype(int), np.r_[calibration - 9, calibration],
                                    target_recall=0.9, scores="validation")
        recalls.append(np.mean(rng.normal(size=2000) >= point.threshold))
    low, high = point.recall_interval()
    inside = np.mean((np.array(recalls) >= low) & (np.array(recalls) <= high))
    assert 0.9 <= inside <= 0.99 and np.mean(recalls) == pytest.approx(point.expected_recall, abs=0.02)


def test_a_test_recall_outside_the_promise_is_called_a_shift():
    point = OperatingPoint(0.3, 0.9, 50, 46, "validation")
    low, high = point.count_interval(50)
    assert 0.7 < low < 0.9 < high <= 1.0
    assert point.check(0.9, 50)["within"] and "within" in point.check(0.9, 50)["words"]
    below = point.check(0.6, 50)
    assert not below["within"] and "shift" in below["words"] and "set the threshold again" in below["words"]
    unknown = OperatingPoint(0.3, 0.9, 0, 0, "validation")
    assert math.isnan(unknown.recall_interval()[0]) and unknown.check(0.6, 50)["within"]


def test_no_threshold_without_both_classes():
    point = set_operating_point(np.ones(5, int), np.linspace(0, 1, 5), target_recall=0.9, scores="validation")
    assert math.isnan(point.threshold)
