"""A trial's models trained in step: one per fold and seed, their summary, and what the trial delivers.

A trial without folds or seeds has one model, trained on the train split
and judged on validation. With ``folds`` = k > 1 it has one per fold of the
train split, each judged on its held-out fold; with ``seeds`` = N > 1, N per
fold. The validation metrics the search ranks are their means (with
standard errors); the delivered model is their mean probability, whose
operating threshold is set here, once (:func:`deliverable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.dataset import Dataset
from trainables.splits import Split
from trainables.device import Placement
from trainables.imbalance import create_strategy
from trainables.loader import BatchLoader
from trainables.loop import EVAL_BATCH_SIZE, evaluate, make_loader, train_one_epoch
from trainables.metrics import classification_metrics
from trainables.models import create_model
from trainables.operating import set_operating_point
from trainables.optim import LR_SCHEDULES, OPTIMIZERS
from trainables.scores import Scores, average_scores, pool_scores
from trainables.stopping import EarlyStopping

FOLD_SEED_STRIDE = 1_000_003  # fold i's models draw from seed + i * this: distinct streams, fold 0 the trial's own
# Seed replicate r (--seeds) draws from seed + r, with the same folds: its own weights, batch order and augmentation.


@dataclass
class FoldRun:
    """One model of a trial, trained on one fold's training images and judged on its validation images.

    A trial without folds has one per seed, on the data's train and val
    splits; with folds, one per fold and seed (``fold``, ``replicate``).
    """

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping
    generator: torch.Generator  # batch order, oversampling, augmentation
    train_loader: BatchLoader
    val_loader: BatchLoader
    # With folds: the validation split, which this fold's model neither trains nor stops on; its scores there at
    # the kept epoch, averaged over the folds, are the fold ensemble's scores that set its operating threshold.
    calibration_loader: BatchLoader | None = None
    calibration_scores: Scores | None = None
    fold: int = 0
    replicate: int = 0  # which of the trial's seeds: cfg.seed + replicate

    def epoch(self, epoch: int, where: Placement, target_recall: float) -> dict[str, float] | None:
        """Train one epoch and judge it; its validation metrics, or None when a loss or score is not finite."""
        train_loss = train_one_epoch(self.model, self.train_loader, self.criterion, self.optimizer, where)
        self.schedule.step()
        val_loss, scores = evaluate(self.model, self.val_loader, where)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss) and np.isfinite(scores.y_score).all()):
            return None
        metrics = {"val_loss": val_loss, **classification_metrics(
            scores.y_true, scores.predictions(), scores.y_score, prefix="val_", target_recall=target_recall)}
        if self.stopper.step(epoch, val_loss, self.model, metrics, scores) and self.calibration_loader is not None:
            self.calibration_scores = evaluate(self.model, self.calibration_loader, where)[1]
        return {"train_loss": train_loss, **metrics}

    def resume_state(self) -> dict[str, Any]:
        """What continues this fold's training with the values it would have had."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.schedule.state_dict(), "early_stopping": self.stopper.counters(),
                "generator": self.generator.get_state()}

    def restore(self, state: dict[str, Any], kept: dict[str, Any], fold: int) -> None:
        """Continue from :meth:`resume_state` and fold ``fold``'s part of the deliverable ``kept``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["lr_schedule"])
        self.generator.set_state(state["generator"])
        scores, calibration = kept.get("fold_scores"), kept.get("calibration_scores")
        self.stopper.restore(state["early_stopping"], kept_weights(kept)[fold], fold_metrics(kept)[fold],
                             Scores(*(np.asarray(part) for part in scores[fold])) if scores else None)
        if calibration:
            self.calibration_scores = Scores(np.asarray(calibration[fold][0]), np.asarray(calibration[fold][1]))


def fold_seed(seed: int, fold: int, replicate: int = 0) -> int:
    """The seed of one model and its batches: the trial's own for the first (or only) fold of its first seed."""
    return seed + replicate + FOLD_SEED_STRIDE * fold


def start_fold(cfg: TrialConfig, train: Split, val: Split, *, fold: int, where: Placement,
               imagenet_state: dict[str, torch.Tensor] | None, calibration: Split | None = None,
               replicate: int = 0) -> FoldRun:
    """A fresh seeded model, optimiser, schedule and loaders for one fold and seed (``calibration``: with folds, val)."""
    seed = fold_seed(cfg.seed, fold, replicate)
    torch.manual_seed(seed)  # model initialisation and dropout, on every device
    generator = torch.Generator().manual_seed(seed)
    model = create_model(
        cfg.architecture,
        in_channels=int(train.images.shape[1]),
        image_size=int(train.images.shape[-1]),
        imagenet_state=imagenet_state if cfg.pretrained else None,
        device=where.device,
    ).to(memory_format=where.memory_format)
    setup = create_strategy(cfg.strategy, train.labels)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg.lr)
    return FoldRun(
        model=model,
        criterion=setup.criterion(where.device),
        optimizer=optimizer,
        schedule=LR_SCHEDULES[cfg.lr_schedule](optimizer, cfg.max_epochs),
        stopper=EarlyStopping(cfg.patience, min_delta=cfg.min_delta, min_epochs=cfg.min_epochs),
        generator=generator,
        train_loader=make_loader(train, cfg, batch_size=cfg.batch_size, where=where, generator=generator,
                                 train=True, sample_weights=setup.sample_weights),
        val_loader=make_loader(val, cfg, batch_size=EVAL_BATCH_SIZE, where=where),
        calibration_loader=None if calibration is None else make_loader(calibration, cfg, batch_size=EVAL_BATCH_SIZE,
                                                                        where=where),
        fold=fold,
        replicate=replicate,
    )


def kept_epoch(runs: list[FoldRun]) -> float:
    """The epoch whose weights a trial keeps: its model's, or the mean over its fold models."""
    epochs = [run.stopper.best_epoch for run in runs]
    return epochs[0] if len(epochs) == 1 else float(np.mean(epochs))


def mean_and_se(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over folds and, with more than one fold, its standard error as ``<metric>_se``.

    A metric that is NaN in a fold (AUC of a fold without positives) is
    averaged over the folds that have it.
    """
    if len(per_fold) == 1:
        return dict(per_fold[0])
    summary = {}
    for key in per_fold[0]:
        values = np.array([m[key] for m in per_fold], dtype=float)
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


def ensemble_name(folds: int, seeds: int) -> str:
    """What a trial's delivered model is the mean of, in words: ``5 fold models``, ``2 seeds x 5 folds``."""
    if seeds == 1:
        return f"{folds} fold models" if folds > 1 else "one model"
    return f"{seeds} seeds x {folds} folds" if folds > 1 else f"{seeds} seeds"



def kept_summary(runs: list[FoldRun], *, target_recall: float) -> dict[str, float]:
    """The kept state's validation metrics: fold means and errors, and with folds the out-of-fold ``oof_`` metrics."""
    if any(not run.stopper.best_metrics for run in runs):
        return {}
    summary = mean_and_se([run.stopper.best_metrics for run in runs])
    parts = held_out_scores(runs)
    if parts is not None and has_folds(runs):
        oof = pool_scores(parts)
        summary.update(classification_metrics(oof.y_true, oof.predictions(), oof.y_score, prefix="oof_",
                                              target_recall=target_recall))
    return summary


def calibration_scores(runs: list[FoldRun]) -> tuple[Scores, str] | None:
    """The scores a trial's operating threshold is set on, and their name.

    With folds, the fold ensemble's (the mean of the kept fold models') on the
    validation split, which none of them trained or stopped on: the model as
    delivered, on images like new ones. Without, the model's validation
    scores (with seeds, the mean of its seeds' models there).
    """
    folded = has_folds(runs)
    parts = [run.calibration_scores if folded else run.stopper.best_scores for run in runs]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0], "validation"
    folds = len({run.fold for run in runs})
    # Read as "set on the mean of its 5 fold models' validation scores" (OperatingPoint.describe).
    return average_scores(parts), f"the mean of its {ensemble_name(folds, len(runs) // folds)}' validation"


def deliverable(cfg: TrialConfig, dataset: Dataset, runs: list[FoldRun], kept: dict[str, float]) -> dict[str, Any]:
    """What a trial delivers: its kept weights (one set per fold), with what it takes to rebuild and judge them.

    ``kept`` is :func:`kept_summary` of ``runs``, as the epoch reported it;
    the operating point is set once, here (trainables.operating), on
    :func:`calibration_scores`.
    """
    parts = held_out_scores(runs)
    calibration = calibration_scores(runs)
    point = None if calibration is None else set_operating_point(
        calibration[0].y_true, calibration[0].y_score, target_recall=cfg.target_recall, scores=calibration[1])
    return {
        "config": cfg.to_dict(),
        "data_channels": dataset.channels,
        "image_size": dataset.image_size,
        "epoch": kept_epoch(runs),
        "weights": [run.stopper.best_state for run in runs],
        "metrics": kept,
        "operating_point": None if point is None else point.to_json(),
        "fold_metrics": [run.stopper.best_metrics for run in runs],
        # Held-out scores: each model's, on its own held-out images (its fold's, else val) at its kept epoch.
        # As tensors, which torch.load(weights_only=True) reads back; numpy arrays would need unpickling.
        "fold_scores": None if parts is None else [(torch.from_numpy(part.y_true), torch.from_numpy(part.y_score))
                                                   for part in parts],
        "units": [(run.replicate, run.fold) for run in runs],  # each model's seed (cfg.seed + it) and fold
        # With folds: each fold model's scores on the validation split at its kept epoch (calibration_scores).
        "calibration_scores": None if not has_folds(runs) or any(run.calibration_scores is None for run in runs) else [
            (torch.from_numpy(run.calibration_scores.y_true), torch.from_numpy(run.calibration_scores.y_score))
            for run in runs],
    }


def kept_weights(kept: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The state dicts of a deliverable's models, one per fold (a single dict in checkpoints before folds)."""
    weights = kept["weights"]
    return weights if isinstance(weights, list) else [weights]


def fold_metrics(kept: dict[str, Any]) -> list[dict[str, float]]:
    """A deliverable's kept validation metrics, per fold."""
    return kept.get("fold_metrics") or [kept["metrics"]]
