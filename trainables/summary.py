"""What a trial's models add up to: each epoch's summary (the means the search ranks), and the deliverable.

The validation metrics the search ranks are the means over a trial's models
(with standard errors); with folds, their pooled held-out scores give the
out-of-fold ``oof_`` metrics. The delivered model is their mean
probability, and its operating threshold is set here, once per epoch, on the
scores of :func:`calibration_members` (trainables.operating has the rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainables.config import TrialConfig
from trainables.dataset import Dataset
from trainables.folds import FoldRun
from trainables.metrics import classification_metrics
from trainables.operating import set_operating_point
from trainables.scores import Scores, average_scores, pool_scores


@dataclass(frozen=True)
class TrialSummary:
    """One epoch of a trial, summed up over its models."""

    epoch: dict[str, float]  # this epoch's validation metrics: means over the models (and _se); empty if diverged
    kept: dict[str, float]  # the kept state's: means, errors and, with folds, oof_ metrics; empty before one
    kept_epoch: float  # the epoch whose weights are kept: the model's, or the mean over the models
    held_out: list[Scores] | None  # each model's scores on its own held-out images at its kept epoch
    folded: bool  # the models were trained on folds of the train split (else all on train, judged on val)
    operating_point: dict[str, Any] | None  # OperatingPoint.to_json() of the delivered model, as of this epoch


def summarise(runs: list[FoldRun], epoch_metrics: list[dict[str, float]] | None, *,
              target_recall: float) -> TrialSummary:
    """The summary of ``runs`` after an epoch whose models reported ``epoch_metrics`` (None: one diverged)."""
    folded, held_out, kept_at = has_folds(runs), held_out_scores(runs), kept_epoch(runs)
    kept = mean_and_se([run.stopper.best_metrics for run in runs]) if all(run.stopper.best_metrics for run in runs) else {}
    means = {} if epoch_metrics is None else mean_and_se(epoch_metrics)
    members, scored_on = calibration_members(runs, folded)
    oof = pool_scores(held_out) if kept and folded and held_out is not None else None
    calibration = None if members is None else members[0] if len(members) == 1 else average_scores(members)
    oof_called = None if oof is None else oof.predictions()
    if oof is not None:
        kept.update(classification_metrics(oof.y_true, oof_called, oof.y_score, prefix="oof_",
                                           target_recall=target_recall))
    point = None if calibration is None else set_operating_point(
        calibration.y_true, calibration.y_score, target_recall=target_recall, scores=scored_on).to_json()
    return TrialSummary(means, kept, kept_at, held_out, folded, point)


def deliverable(cfg: TrialConfig, dataset: Dataset, runs: list[FoldRun], summary: TrialSummary) -> dict[str, Any]:
    """What a trial delivers: its kept weights (one set per model), with what it takes to rebuild and judge them."""
    return {
        "config": cfg.to_dict(),
        "data_channels": dataset.channels,
        "image_size": dataset.image_size,
        "epoch": summary.kept_epoch,
        "weights": [run.stopper.best_state for run in runs],
        "metrics": summary.kept,
        "operating_point": summary.operating_point,
        "fold_metrics": [run.stopper.best_metrics for run in runs],
        # Held-out scores: each model's, on its own held-out images (its fold's, else val) at its kept epoch.
        # As tensors, which torch.load(weights_only=True) reads back; numpy arrays would need unpickling.
        "fold_scores": None if summary.held_out is None else [
            (torch.from_numpy(part.y_true), torch.from_numpy(part.y_score)) for part in summary.held_out],
        "units": [(run.replicate, run.fold) for run in runs],  # each model's seed (cfg.seed + it) and fold
        # With folds: each fold model's scores on the validation split at its kept epoch (calibration_members).
        "calibration_scores": None if not summary.folded or any(run.calibration_scores is None for run in runs) else [
            (torch.from_numpy(run.calibration_scores.y_true), torch.from_numpy(run.calibration_scores.y_score))
            for run in runs],
    }


def kept_epoch(runs: list[FoldRun]) -> float:
    """The epoch whose weights a trial keeps: its model's, or the mean over its models."""
    epochs = [run.stopper.best_epoch for run in runs]
    return epochs[0] if len(epochs) == 1 else float(np.mean(epochs))


def mean_and_se(per_model: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the models and, with more than one, its standard error as ``<metric>_se``.

    A metric that is NaN for a model (AUC of a fold without positives) is
    averaged over the models that have it.
    """
    if len(per_model) == 1:
        return dict(per_model[0])
    summary = {}
    for key in per_model[0]:
        values = np.array([m[key] for m in per_model], dtype=float)
        values = values[~np.isnan(values)]
        summary[key] = float(values.mean()) if len(values) else math.nan
        summary[f"{key}_se"] = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return summary


def held_out_scores(runs: list[FoldRun]) -> list[Scores] | None:
    """Each model's scores on its own held-out images (its fold's, else val) at its kept epoch; None before one."""
    if any(run.stopper.best_scores is None for run in runs):
        return None
    return [run.stopper.best_scores for run in runs]


def has_folds(runs: list[FoldRun]) -> bool:
    """Whether the trial's models were trained on folds of the train split (else all on train, judged on val)."""
    return any(run.fold > 0 for run in runs)


def calibration_members(runs: list[FoldRun], folded: bool) -> tuple[list[Scores] | None, str]:
    """The scores whose mean sets a trial's operating threshold, one per model, and their name.

    With folds, each kept fold model's on the validation split, which none of
    them trained or stopped on: their mean is the model as delivered, on
    images like new ones. Without, each model's validation scores (with
    seeds, one per seed). None until every model has them.
    """
    parts = [run.calibration_scores if folded else run.stopper.best_scores for run in runs]
    if any(p is None for p in parts):
        return None, ""
    if len(parts) == 1:
        return parts, "validation"
    folds = len({run.fold for run in runs})
    # Read as "set on the mean of its 5 fold models' validation scores" (OperatingPoint.describe).
    return parts, f"the mean of its {ensemble_name(folds, len(runs) // folds)}' validation"


def ensemble_name(folds: int, seeds: int) -> str:
    """What a trial's delivered model is the mean of, in words: ``5 fold models``, ``2 seeds x 5 folds``."""
    if seeds == 1:
        return f"{folds} fold models" if folds > 1 else "one model"
    return f"{seeds} seeds x {folds} folds" if folds > 1 else f"{seeds} seeds"
