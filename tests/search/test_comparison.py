"""Paired comparisons of trials on the same held-out images: ties with the best, the tie rule, strategy effects."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from search.comparison import (
    HeldOut,
    PairedComparer,
    compare,
    comparison_lines,
    effects_frame,
    tie_marks,
    ties_in_words,
)
from trainables.metrics import classification_metrics
from trainables.uncertainty import paired_difference, resampled_mean, unit_resamples

RNG = np.random.default_rng(0)
LABELS = np.r_[np.zeros(300, int), np.ones(60, int)]


def _scores(separation: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + separation * (LABELS - 0.5) + rng.normal(0, 0.25, len(LABELS)), 0, 1)


def _held(*scores: np.ndarray) -> HeldOut:
    return HeldOut(tuple((0, i) for i in range(len(scores))), tuple((LABELS, s) for s in scores))


@pytest.mark.parametrize("metric", ["val_specificity_at_recall", "val_precision_at_recall", "val_auc", "val_recall"])
def test_resampled_mean_reports_the_metric_the_trainable_reports(metric):
    y_score = _scores(0.3, 1)
    resamples = unit_resamples([LABELS], n_resamples=10)
    observed, draws = resampled_mean([(LABELS, y_score)], resamples, metric=metric, target_recall=0.9)
    expected = classification_metrics(LABELS, y_score > 0.5, y_score, target_recall=0.9)[metric.removeprefix("val_")]
    assert observed == pytest.approx(expected) and draws.shape == (10,)
    if metric == "val_auc":
        assert observed == pytest.approx(roc_auc_score(LABELS, y_score))


def test_the_loss_is_the_mean_cross_entropy():
    y_score = _scores(0.3, 1)
    observed, _ = resampled_mean([(LABELS, y_score)], unit_resamples([LABELS], n_resamples=5), metric="val_loss")
    p = np.clip(np.where(LABELS == 1, y_score, 1 - y_score), 1e-7, 1)
    assert observed == pytest.approx(-np.log(p).mean())


def test_a_model_is_tied_with_itself_and_a_much_better_one_is_not():
    resamples = unit_resamples([LABELS], n_resamples=500)
    weak, strong = _scores(0.1, 1), _scores(0.6, 2)
    same = paired_difference(*(resampled_mean([(LABELS, weak)], resamples, metric="val_auc"),) * 2, images=360, units=1)
    assert same.estimate == 0 and not same.significant and same.p_value == 1.0
    better = paired_difference(resampled_mean([(LABELS, strong)], resamples, metric="val_auc"),
                               resampled_mean([(LABELS, weak)], resamples, metric="val_auc"), images=360, units=1)
    assert better.estimate > 0 and better.significant and better.p_value < 0.01 and better.low > 0


def _trials(rows):
    frame = pd.DataFrame(rows)
    return frame.assign(objective=frame.get("objective", 0.0), guard_passed=True, ended_by="patience",
                        weights_kept=frame.get("weights_kept", True))


def test_ties_are_marked_and_the_cheapest_tied_trial_is_delivered():
    # a: best; b: nearly a (tied), with fewer parameters; c: far worse. Ranked a, b, c.
    base = _scores(0.5, 1)
    held = {"a": _held(base), "b": _held(np.clip(base + RNG.normal(0, 0.01, len(base)), 0, 1)),
            "c": _held(_scores(0.05, 3))}
    ranked = _trials([{"trial_id": "a", "parameters": 1000, "epochs": 5},
                      {"trial_id": "b", "parameters": 10, "epochs": 9},
                      {"trial_id": "c", "parameters": 1, "epochs": 1}])
    record = compare(ranked, held, metric="val_auc", mode="max", target_recall=0.9, rule="cheapest", draws=300)
    assert [row["tie"] for row in record["ties"]] == ["best", "tied", "worse"]
    assert record["best"] == "a" and record["tied_with_best"] == 1 and record["chosen"] == "b"
    assert tie_marks(ranked, record).tolist() == ["best", "tied", "worse"]
    assert "tied with 1 other of the 2 compared" in ties_in_words(record)
    assert compare(ranked, held, metric="val_auc", mode="max", target_recall=0.9, rule="best",
                   draws=300)["chosen"] == "a"
    # A tied trial whose weights the search deleted cannot be delivered.
    gone = ranked.assign(weights_kept=[True, False, True])
    assert compare(gone, held, metric="val_auc", mode="max", target_recall=0.9, rule="cheapest",
                   draws=300)["chosen"] == "a"


def test_trials_scored_on_other_images_are_not_compared():
    held = {"a": _held(_scores(0.5, 1)), "b": HeldOut(((1, 0),), ((LABELS, _scores(0.5, 2)),))}
    ranked = _trials([{"trial_id": "a"}, {"trial_id": "b"}])
    comparer = PairedComparer(held, metric="val_auc", target_recall=0.9, draws=50)
    assert comparer.difference("a", "b") is None
    record = compare(ranked, held, metric="val_auc", mode="max", target_recall=0.9, rule="cheapest", draws=50)
    assert record["ties"][1]["tie"] == "not compared" and "no other trial could be compared" in ties_in_words(record)


def test_strategy_effects_pair_each_strategy_with_none_per_architecture_and_say_when_noise_wins():
    held = {"cnn-none": _held(_scores(0.1, 1)), "cnn-both": _held(_scores(0.6, 2)),
            "bn-none": _held(_scores(0.4, 3)), "bn-both": _held(_scores(0.4, 4))}
    ranked = _trials([{"trial_id": t, "config/architecture": t.split("-")[0], "config/strategy": t.split("-")[1]}
                      for t in ("cnn-both", "bn-none", "bn-both", "cnn-none")])
    record = compare(ranked, held, metric="val_auc", mode="max", target_recall=0.9, rule="cheapest", draws=300)
    effects = {(e["architecture"], e["strategy"]): e for e in record["effects"]}
    assert effects[("cnn", "both")]["verdict"] == "better" and effects[("cnn", "both")]["effect"]["low"] > 0
    assert effects[("bn", "both")]["verdict"] == "no difference the data can tell"
    table = effects_frame(record)
    assert list(table.columns[:3]) == ["architecture", "strategy", "val_auc minus none"]
    lines = "\n".join(comparison_lines(record))
    assert "both on cnn (better)" in lines and "the other 1 are within noise" in lines


def test_when_nothing_differs_the_words_say_the_data_cannot_tell():
    held = {t: _held(_scores(0.3, 1)) for t in ("x", "y")}
    ranked = _trials([{"trial_id": "x", "config/architecture": "cnn", "config/strategy": "none"},
                      {"trial_id": "y", "config/architecture": "cnn", "config/strategy": "both"}])
    record = compare(ranked, held, metric="val_specificity_at_recall", mode="max", target_recall=0.9,
                     rule="cheapest", draws=100)
    assert "the data cannot tell these configurations apart" in ties_in_words(record)
    assert "No strategy differs from none by more than noise" in "\n".join(comparison_lines(record))
