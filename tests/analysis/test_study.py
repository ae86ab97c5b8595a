"""Figures and tables of a whole search, from DataFrames alone (no Ray)."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, balanced_accuracy_score, fbeta_score, recall_score

from analysis.document import Document
from analysis.evaluation import Scores
from analysis.importance import dimension_importance, trials_as_study
from analysis.reporting import _validation_vs_test_section, validation_vs_test
from analysis.study import (
    best_cells,
    importance_figure,
    parallel_coordinates_figure,
    pareto_figure,
    pareto_front,
    strategy_panel_figure,
    validation_vs_test_figure,
)
from analysis.tables import bootstrap_metric, objective_in_words

ARCHS, STRATEGIES = ("cnn", "cnn_bn"), ("none", "weighted_loss", "oversampling", "both")


def grid_trials(*, strategy_effect: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """A 2 x 4 x 2 grid whose objective depends on the strategy only (plus a little noise); 'both' fails the guard."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in ARCHS:
        for k, s in enumerate(STRATEGIES):
            for augment in (False, True):
                failed = s == "both" and a == "cnn"
                recall = 0.6 + strategy_effect * k + rng.normal(0, 0.005)
                rows.append({
                    "trial_id": f"t{len(rows):02d}", "config/architecture": a, "config/strategy": s,
                    "config/augment": augment, "config/lr": 0.001,
                    "kept_val_recall": 1.0 if failed else recall, "kept_val_precision": 0.95 - 0.1 * k,
                    "kept_val_balanced_accuracy": 0.5 if failed else 0.8, "kept_val_auc": 0.9,
                    "objective": -1.0 if failed else recall, "guard_passed": not failed,
                })
    return pd.DataFrame(rows)


def test_importance_finds_the_dimension_that_drives_the_objective():
    importance = dimension_importance(grid_trials())
    assert importance["dimension"].iloc[0] == "strategy" and importance["importance"].iloc[0] > 0.5
    assert set(importance["dimension"]) == {"strategy", "architecture", "augment"}  # lr did not vary
    assert importance["importance"].sum() == pytest.approx(1.0)
    ped = dimension_importance(grid_trials(), evaluator="ped_anova")
    assert set(ped["dimension"]) == set(importance["dimension"])


def test_importance_edge_cases():
    trials = grid_trials()
    assert dimension_importance(trials.head(1)).empty
    flat = trials.assign(objective=0.5)
    assert (dimension_importance(flat)["importance"] == 0).all()
    with pytest.raises(ValueError, match="unknown importance evaluator 'shap'"):
        dimension_importance(trials, evaluator="shap")


def test_trials_become_an_optuna_study_with_categorical_dimensions():
    study = trials_as_study(grid_trials(), mode="max")
    assert len(study.trials) == 16 and study.direction.name == "MAXIMIZE"
    assert study.trials[0].distributions["augment"].choices == (False, True)
    assert {t.params["strategy"] for t in study.trials} == set(STRATEGIES)


def test_best_cells_rank_like_the_search_and_keep_guard_failures_visible():
    cells = best_cells(grid_trials())
    assert len(cells) == 8 and set(cells.columns) >= {"trial_id", "estimate", "guard_passed"}
    failed = cells[(cells["config/architecture"] == "cnn") & (cells["config/strategy"] == "both")]
    assert failed["guard_passed"].tolist() == [False] and failed["estimate"].tolist() == [1.0]


def test_pareto_front_keeps_only_undominated_trials():
    frame = pd.DataFrame({"kept_val_recall": [0.9, 0.8, 0.7, 0.9, np.nan],
                          "kept_val_precision": [0.5, 0.6, 0.55, 0.4, 0.9]})
    assert pareto_front(frame).tolist() == [True, True, False, False, False]


def test_guard_failures_are_said_in_words():
    trials = grid_trials()
    words = objective_in_words(trials, min_balanced_accuracy=0.6)
    failed = words[trials["guard_passed"] == False]  # noqa: E712
    assert failed.tolist() == ["failed guard: balanced accuracy 0.50 < 0.60"] * 2
    assert words.iloc[0] == f"{trials['objective'].iloc[0]:.4f}"


@pytest.mark.parametrize("metric, score", [
    ("val_recall", lambda t, s: recall_score(t, s > 0.5)),
    ("kept_val_f2", lambda t, s: fbeta_score(t, s > 0.5, beta=2)),
    ("balanced_accuracy", lambda t, s: balanced_accuracy_score(t, s > 0.5)),
    ("val_ap", average_precision_score),
])
def test_bootstrap_metric_estimate_matches_scikit_learn_and_lies_in_its_interval(metric, score):
    rng = np.random.default_rng(0)
    y_true = (rng.random(120) < 0.3).astype(int)
    y_score = np.clip(y_true * 0.35 + rng.random(120) * 0.65, 0, 1)
    estimate, low, high = bootstrap_metric(y_true, y_score, metric=metric, n_resamples=300)
    assert estimate == pytest.approx(score(y_true, y_score))
    assert low <= estimate <= high and low < high
    with pytest.raises(ValueError, match="no bootstrap for metric 'val_loss'"):
        bootstrap_metric(y_true, y_score, metric="val_loss")


def test_validation_vs_test_warns_when_validation_holds_few_minority_examples(tmp_path):
    rng = np.random.default_rng(1)

    def scores(positives: int, negatives: int) -> Scores:
        y = np.array([1] * positives + [0] * negatives)
        return Scores(y, np.clip(y * 0.4 + rng.random(len(y)) * 0.6, 0, 1))

    chosen = [("best overall", "t01", scores(12, 60), scores(80, 200))]
    frame = validation_vs_test(chosen, resamples=100)
    assert len(frame) == 6 and set(frame["split"]) == {"validation", "test"}
    doc = Document("x")
    _validation_vs_test_section(doc, chosen, tmp_path, resamples=100)
    text = doc.to_markdown()
    assert "Warning: the validation split holds only 12 minority examples (fewer than 50)" in text
    many = [("best overall", "t01", scores(60, 100), scores(80, 200))]
    doc = Document("y")
    _validation_vs_test_section(doc, many, tmp_path, resamples=100)
    assert "Warning" not in doc.to_markdown()
    assert isinstance(validation_vs_test_figure(frame), Figure)


def test_every_figure_comes_from_the_dataframes_alone():
    trials = grid_trials()
    cells = best_cells(trials).assign(low=lambda c: c["estimate"] - 0.05, high=lambda c: c["estimate"] + 0.02)
    for fig in (strategy_panel_figure(cells), parallel_coordinates_figure(trials), pareto_figure(trials),
                importance_figure(dimension_importance(trials))):
        assert isinstance(fig, Figure) and fig.axes

