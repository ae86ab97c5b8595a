"""What a finished search delivers, recorded once in ``best.json``: the chosen model, its threshold, its test result.

The deliverable is the best-ranked trial's kept model (the mean of its fold
models with folds), or with ``--ensemble-top N`` the mean of the top N
trials' models that take the same image size. Its operating point comes with
it: the trial's own (trainables.operating, set when the trial kept its
weights), or for an ensemble one set the same way on the ensemble's own
validation scores. The choice is made on validation alone;
the test split is scored here once, for the deliverable only.

Everything after the search (the CLI's last lines, ``analysis.report``,
``search.export``, ``search.predict``, ``Classifier.load``) reads this record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune

from search.results import OBJECTIVE, rank_trials
from trainables import (
    KEPT_FILE,
    Dataset,
    KeptModel,
    Scores,
    average_scores,
    classification_metrics,
    ensemble_name,
    has_checkpoint_file,
    load_kept_model,
)
from trainables.classifier import Classifier
from trainables.embedded import PNEUMONIA_SOURCE
from trainables.operating import OperatingPoint, set_operating_point
from trainables.uncertainty import bootstrap_metric

ESTIMATE_RESAMPLES = 1000
# The deliverable's estimates: (metric, decision) bootstrapped on the scores its threshold was set on.
ESTIMATED = (("auc", None), ("specificity", "threshold"), ("precision", "threshold"), ("recall", "0.5"),
             ("precision", "0.5"))


def deliver(results: tune.ResultGrid, frame: pd.DataFrame, datasets: dict[int, Dataset], *, mode: str,
            folder: Path | str, ensemble_top: int = 1, first: str | None = None) -> dict[str, Any] | None:
    """The record of ``best.json``: the deliverable, its operating point and estimates, and its test result, once.

    ``first`` is the trial id to deliver (the tie rule's choice, search.comparison); default the best-ranked.
    """
    ranked = rank_trials(frame.dropna(subset=[OBJECTIVE]) if OBJECTIVE in frame else frame, mode=mode)
    if ranked.empty:
        return None
    if first is not None:
        chosen = ranked["trial_id"].astype(str) == first
        ranked = pd.concat([ranked[chosen], ranked[~chosen]])
    by_path = {r.path: r for r in results}
    best = by_path[ranked["path"].iloc[0]]
    if best.checkpoint is None:
        return None
    members = [(best, load_kept_model(best.checkpoint, device="cpu"))]
    for path in ranked["path"].iloc[1:]:
        if len(members) >= ensemble_top:
            break
        result = by_path[path]
        if has_checkpoint_file(result.checkpoint, KEPT_FILE):
            kept = load_kept_model(result.checkpoint, device="cpu")
            if kept.image_size == members[0][1].image_size:  # one input for the whole ensemble
                members.append((result, kept))
    chosen = members[0][1]
    dataset = datasets[chosen.image_size]
    classifier, calibration = _delivered(members, dataset)
    test = Scores(dataset.test.labels, classifier.predict_proba(dataset.test.images))
    point = classifier.operating_point
    record: dict[str, Any] = {
        "deliverable": {
            "kind": "ensemble" if len(members) > 1 else "trial",
            "summary": _summary(members),
            "members": [{"trial": (r.metrics or {}).get("trial_id", Path(r.path).name),
                         "trial_path": r.path, "checkpoint": os.path.relpath(r.checkpoint.path, folder),
                         "config": kept.config.to_dict()} for r, kept in members],
            "folds": chosen.folds,
            "seeds": chosen.seeds,
            "image_size": chosen.image_size,
            "channels": dataset.channels,
            "class_names": list(dataset.class_names),
            "data_source": dataset.source,
        },
        "operating_point": point.to_json(),
        "config": chosen.config.to_dict(),
        "trial_path": best.path,
        "folds": chosen.folds,
        "val": _kept_metrics(best.metrics, "val_"),
        **({"out_of_fold": oof} if (oof := _kept_metrics(best.metrics, "oof_")) else {}),
        "estimates": estimates(calibration, point),
        **test_record(test, point),
    }
    if len(members) > 1:
        record["ensemble"] = {"members": [r.path for r, _ in members],
                              "val": classification_metrics(calibration.y_true, calibration.predictions(),
                                                            calibration.y_score, prefix="val_",
                                                            target_recall=point.target_recall)}
    return record


def calibration_scores(members: Sequence[KeptModel], dataset: Dataset) -> Scores:
    """The scores a deliverable's operating point is set on: its members' mean scores on the validation split
    (with folds, a split none of the fold models trained on)."""
    return average_scores([kept.validation_scores(dataset.val) for kept in members])


def _delivered(members: Sequence[tuple[Any, KeptModel]], dataset: Dataset) -> tuple[Classifier, Scores]:
    """The delivered classifier with its operating point, and the scores that point was set on."""
    calibration = calibration_scores([kept for _, kept in members], dataset)
    if len(members) == 1:
        return members[0][1].classifier, calibration
    first = members[0][1]
    on = "the ensemble's validation"
    point = set_operating_point(calibration.y_true, calibration.y_score, target_recall=first.config.target_recall,
                                scores=on)
    return Classifier.combine([kept.classifier for _, kept in members], point), calibration


def _summary(members: Sequence[tuple[Any, KeptModel]]) -> str:
    """The deliverable in words: ``cnn_bn, oversampling: the mean of its 5 fold models``."""
    def name(kept: KeptModel) -> str:
        c = kept.config
        return f"{c.architecture}, {c.strategy}{', augmented' if c.augment else ''}"

    first = members[0][1]
    models = ensemble_name(first.folds, first.seeds)
    each = f"the mean of its {models}" if len(first.classifier.members) > 1 else models
    if len(members) == 1:
        return f"{name(first)}: {each}"
    return (f"the mean of the top {len(members)} trials' models ({'; '.join(name(k) for _, k in members)})"
            + (f", {models} each" if len(first.classifier.members) > 1 else ""))


def estimates(calibration: Scores, point: OperatingPoint, *, resamples: int = ESTIMATE_RESAMPLES) -> dict[str, Any]:
    """What validation (or out-of-fold) scores say of the deliverable, each with a 95 % bootstrap interval."""
    out: dict[str, Any] = {"on": point.scores, "images": len(calibration.y_true),
                           "positives": int(calibration.y_true.sum()), "resamples": resamples}
    for metric, decision in ESTIMATED:
        threshold = point.threshold if decision == "threshold" else None
        if decision == "threshold" and math.isnan(point.threshold):
            continue
        estimate, low, high = bootstrap_metric(calibration.y_true, calibration.y_score, metric=metric,
                                               n_resamples=resamples, threshold=threshold)
        key = metric if decision is None else f"{metric}_at_{'threshold' if threshold is not None else '0.5'}"
        out[key] = {"estimate": estimate, "low": low, "high": high}
    low, high = point.recall_interval()
    out["recall_on_new_positives"] = {"estimate": point.expected_recall, "low": low, "high": high,
                                      "how": "split conformal, Beta(m, P + 1 - m) over calibration draws"}
    return out


def test_record(test: Scores, point: OperatingPoint) -> dict[str, Any]:
    """The deliverable's test result at 0.5 and at its operating threshold, with how it stands against the promise."""
    record: dict[str, Any] = {
        "test_images": {"images": len(test.y_true), "positives": int(test.y_true.sum())},
        "test": classification_metrics(test.y_true, test.predictions(), test.y_score, prefix="test_"),
    }
    if not math.isnan(point.threshold):
        at = classification_metrics(test.y_true, test.predictions(point.threshold), test.y_score, prefix="test_")
        at["test_specificity"] = float(((test.y_score < point.threshold) & (test.y_true == 0)).sum()
                                       / max(int((test.y_true == 0).sum()), 1))
        record["test_at_operating_threshold"] = at
        record["test_check"] = point.check(at["test_recall"], int(test.y_true.sum()))
    return record


def _kept_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The kept state's metrics whose name starts with ``prefix`` (``val_``, ``oof_``), without ``kept_``."""
    return {k.removeprefix("kept_"): v for k, v in metrics.items() if k.startswith(f"kept_{prefix}")}


def delivery_lines(best: dict[str, Any], where: Path) -> list[str]:
    """The CLI's last lines: what is delivered, its threshold with the rule, and its test result against the promise."""
    deliverable, point = best["deliverable"], OperatingPoint.from_json(best["operating_point"])
    folds, seeds = deliverable["folds"], deliverable.get("seeds", 1)
    judged_on = ("validation" if folds == 1 else f"{folds}-fold cross-validation") + (
        f" averaged over {seeds} seeds" if seeds > 1 else "")
    images = best["test_images"]
    test = best["test"]
    lines = [f"Delivered ({where}): {deliverable['summary']}, chosen on {judged_on}.",
             f"Its {point.describe()}."]
    split = f"Test split, touched once ({images['images']} images, {images['positives']} positive)"
    if "test_at_operating_threshold" in best:
        at = best["test_at_operating_threshold"]
        lines.append(f"{split}: at the operating threshold {point.threshold:.4f} recall {at['test_recall']:.4f}, "
                     f"specificity {at['test_specificity']:.4f}, precision {at['test_precision']:.4f}; "
                     f"at 0.5 recall {test['test_recall']:.4f}, precision {test['test_precision']:.4f}; "
                     f"AUC {test['test_auc']:.4f}.")
        check = best["test_check"]
        lines.append(check["words"][0].upper() + check["words"][1:] + ".")
        if not check["within"] and deliverable.get("data_source") == PNEUMONIA_SOURCE:
            lines.append("The embedded set's test images come from PneumoniaMNIST's official test split, which is "
                         "shifted from its train and validation splits (docs/benchmarks.md): this is that shift.")
    else:
        lines.append(f"{split}: at 0.5 recall {test['test_recall']:.4f}, precision {test['test_precision']:.4f}, "
                     f"AUC {test['test_auc']:.4f}; no operating threshold (validation lacked a class).")
    return lines


__all__ = ["calibration_scores", "deliver", "delivery_lines", "estimates", "test_record"]
