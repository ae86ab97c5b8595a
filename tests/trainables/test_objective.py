import numpy as np
import pytest

from trainables import classification_metrics, guarded_objective, tiebroken_objective

Y_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_a_model_that_calls_everything_positive_cannot_win_on_recall():
    everything = classification_metrics(Y_TRUE, np.ones(10), np.full(10, 0.9), prefix="val_")
    honest = classification_metrics(Y_TRUE, (np.arange(10) >= 7).astype(int), np.linspace(0, 1, 10), prefix="val_")
    assert everything["val_recall"] == 1.0 > honest["val_recall"]
    kw = dict(metric="val_recall", mode="max", min_balanced_accuracy=0.6)
    assert guarded_objective(everything, **kw) < 0 < guarded_objective(honest, **kw)
    assert guarded_objective(everything, **{**kw, "min_balanced_accuracy": 0.0}) == 1.0


def test_a_degenerate_models_loss_is_demoted_too():
    m = {"val_loss": 0.3, "val_balanced_accuracy": 0.5}
    assert guarded_objective(m, metric="val_loss", mode="min", min_balanced_accuracy=0.6) == pytest.approx(2.3)
    assert guarded_objective({**m, "val_balanced_accuracy": 0.7}, metric="val_loss", mode="min",
                             min_balanced_accuracy=0.6) == 0.3
    assert guarded_objective(m, metric="val_loss", mode="min", min_balanced_accuracy=0.0) == 0.3


def test_tiebroken_objective_orders_ties_by_balanced_accuracy_then_auc_and_keeps_distinct_objectives():
    def score(objective, balanced, auc, mode="max"):
        return tiebroken_objective(objective, {"val_balanced_accuracy": balanced, "val_auc": auc}, mode=mode)

    assert score(1.0, 0.97, 0.90) > score(1.0, 0.96, 1.00) > score(1.0, 0.96, 0.99) > score(998 / 999, 1.0, 1.0)
    assert score(0.3, 0.97, 0.9, mode="min") < score(0.3, 0.96, 0.9, mode="min") < score(0.302, 1.0, 1.0, mode="min")
    assert score(0.5, float("nan"), None) == 0.5  # one class in validation: nothing to break ties with


def test_score_metrics_are_not_guarded_and_cannot_be_won_by_calling_everything_positive():
    constant = classification_metrics(Y_TRUE, np.ones(10), np.full(10, 0.9), target_recall=0.9, prefix="val_")
    assert constant["val_specificity_at_recall"] == 0.0 and constant["val_recall"] == 1.0
    kw = dict(mode="max", min_balanced_accuracy=0.6)
    assert guarded_objective(constant, metric="val_specificity_at_recall", **kw) == 0.0  # not demoted, still last
    assert guarded_objective(constant, metric="val_recall", **kw) < 0
