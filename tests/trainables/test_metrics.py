import numpy as np
import pytest

from trainables import classification_metrics

Y_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_metrics_match_hand_computed_values():
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])  # TP 3, FN 1, FP 2, TN 4
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.35])
    m = classification_metrics(Y_TRUE, y_pred, scores, prefix="val_")
    assert m["val_recall"] == pytest.approx(3 / 4)
    assert m["val_precision"] == pytest.approx(3 / 5)
    assert m["val_f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert m["val_f2"] == pytest.approx(5 * 0.6 * 0.75 / (4 * 0.6 + 0.75))
    assert m["val_balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["val_predicted_positive_rate"] == pytest.approx(0.5)
    # Positives' scores beat negatives' in 21 of 24 pairs (0.35 is below 0.4, 0.6 and 0.7).
    assert m["val_auc"] == pytest.approx(21 / 24)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_scikit_learn_with_ties_and_edge_cases(seed):
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    y_true = rng.integers(0, 2, n)
    y_true[:2] = [0, 1]
    y_score = rng.integers(0, 5, n) / 4  # few distinct values: many ties
    y_pred = [(y_score > 0.5).astype(int), np.ones(n, int), np.zeros(n, int)][seed % 3]
    m = classification_metrics(y_true, y_pred, y_score)
    expected = {
        "recall": sk.recall_score(y_true, y_pred, zero_division=0),
        "precision": sk.precision_score(y_true, y_pred, zero_division=0),
        "f1": sk.f1_score(y_true, y_pred, zero_division=0),
        "f2": sk.fbeta_score(y_true, y_pred, beta=2, zero_division=0),
        "auc": sk.roc_auc_score(y_true, y_score),
        "ap": sk.average_precision_score(y_true, y_score),
        "balanced_accuracy": sk.balanced_accuracy_score(y_true, y_pred),
        "accuracy": sk.accuracy_score(y_true, y_pred),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key


def test_one_class_leaves_the_ranking_metrics_undefined():
    m = classification_metrics(np.zeros(4), np.zeros(4), np.linspace(0, 1, 4))
    assert np.isnan(m["auc"]) and np.isnan(m["ap"]) and np.isnan(m["balanced_accuracy"]) and m["accuracy"] == 1.0


def test_the_operating_point_is_the_highest_threshold_reaching_the_target_recall_on_new_positives():
    from sklearn.metrics import precision_score, recall_score

    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.35])  # positives: 0.8, 0.9, 0.95, 0.35
    m = classification_metrics(Y_TRUE, scores > 0.5, scores, target_recall=0.6)
    assert m["threshold_at_recall"] == 0.8  # ceil(0.6 x 5) = 3 of the four positives at >= 0.8, none of the negatives
    assert m["precision_at_recall"] == 1.0 and m["specificity_at_recall"] == 1.0
    # 3 of 4 reach 0.75 on these positives, but a new one beats the third highest only with chance 3/5
    assert classification_metrics(Y_TRUE, scores > 0.5, scores, target_recall=0.75)["threshold_at_recall"] == 0.35
    full = classification_metrics(Y_TRUE, scores > 0.5, scores, target_recall=1.0)
    called = scores >= full["threshold_at_recall"]
    assert full["threshold_at_recall"] == 0.35 and recall_score(Y_TRUE, called) == 1.0
    assert full["precision_at_recall"] == pytest.approx(precision_score(Y_TRUE, called))
    assert full["specificity_at_recall"] == pytest.approx(3 / 6)  # 0.1, 0.2 and 0.3 stay below


def test_the_operating_point_keeps_its_recall_promise_on_new_positives():
    """Averaged over many draws of 14 positives, new positives reach the target; the count-on-these rule falls short."""
    rng = np.random.default_rng(0)
    target, recalls, plain = 0.9, [], []
    for _ in range(2000):
        y_true = np.r_[np.ones(14), np.zeros(40)]
        y_score = np.r_[rng.normal(1, 1, 14), rng.normal(-1, 1, 40)]
        threshold = classification_metrics(y_true, y_score > 0, y_score, target_recall=target)["threshold_at_recall"]
        new_positives = rng.normal(1, 1, 500)
        recalls.append(np.mean(new_positives >= threshold))
        plain.append(np.mean(new_positives >= np.sort(y_score[:14])[::-1][int(np.ceil(target * 14)) - 1]))
    assert np.mean(recalls) >= target > np.mean(plain)
