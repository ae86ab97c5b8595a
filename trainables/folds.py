"""A trial's models, trained in step: one per fold and seed, each fresh and seeded, and one epoch of each.

A trial without folds or seeds has one model, trained on the train split
and judged on validation. With ``folds`` = k > 1 it has one per fold of the
train split, each judged on its held-out fold; with ``seeds`` = N > 1, N per
fold. What they add up to (the means the search ranks, the deliverable) is
trainables.summary; how they continue after a crash, trainables.resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.device import Placement
from trainables.imbalance import create_strategy
from trainables.loader import EVAL_BATCH_SIZE, BatchLoader, model_loader
from trainables.loop import evaluate, train_one_epoch
from trainables.metrics import classification_metrics
from trainables.models import ModelSpec
from trainables.optim import LR_SCHEDULES, OPTIMIZERS
from trainables.scores import Scores
from trainables.splits import Split
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
        predicted = scores.predictions()
        metrics = {"val_loss": val_loss, **classification_metrics(
            scores.y_true, predicted, scores.y_score, prefix="val_", target_recall=target_recall)}
        if self.stopper.step(epoch, val_loss, self.model, metrics, scores) and self.calibration_loader is not None:
            self.calibration_scores = evaluate(self.model, self.calibration_loader, where)[1]
        return {"train_loss": train_loss, **metrics}


def fold_seed(seed: int, fold: int, replicate: int = 0) -> int:
    """The seed of one model and its batches: the trial's own for the first (or only) fold of its first seed."""
    return seed + replicate + FOLD_SEED_STRIDE * fold


def start_fold(cfg: TrialConfig, spec: ModelSpec, train: Split, val: Split, *, fold: int, where: Placement,
               imagenet_state: dict[str, torch.Tensor] | None, calibration: Split | None = None,
               replicate: int = 0) -> FoldRun:
    """A fresh seeded ``spec`` model, optimiser, schedule and loaders for one fold and seed.

    ``calibration`` is, with folds, the validation split (see :class:`FoldRun`).
    """
    seed = fold_seed(cfg.seed, fold, replicate)
    torch.manual_seed(seed)  # model initialisation and dropout, on every device
    generator = torch.Generator().manual_seed(seed)
    model = spec.build(in_channels=int(train.images.shape[1]), image_size=int(train.images.shape[-1]),
                       imagenet_state=imagenet_state if cfg.pretrained else None,
                       device=where.device).to(memory_format=where.memory_format)
    setup = create_strategy(cfg.strategy, train.labels)
    criterion = setup.criterion(where.device)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg.lr)
    train_loader = model_loader(train, spec, where, batch_size=cfg.batch_size, train=True, augment=cfg.augment,
                                generator=generator, sample_weights=setup.sample_weights)
    val_loader = model_loader(val, spec, where, batch_size=EVAL_BATCH_SIZE)
    calibration_loader = None if calibration is None else model_loader(calibration, spec, where,
                                                                       batch_size=EVAL_BATCH_SIZE)
    return FoldRun(
        model=model,
        criterion=criterion,
        optimizer=optimizer,
        schedule=LR_SCHEDULES[cfg.lr_schedule](optimizer, cfg.max_epochs),
        stopper=EarlyStopping(cfg.patience, min_delta=cfg.min_delta, min_epochs=cfg.min_epochs),
        generator=generator,
        train_loader=train_loader,
        val_loader=val_loader,
        calibration_loader=calibration_loader,
        fold=fold,
        replicate=replicate,
    )
