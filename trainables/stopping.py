"""Early stopping on the validation loss, keeping the best weights and their validation scores."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainables.scores import Scores

# The fields that resume the stopping rule (trainables.resume); the kept weights, metrics and scores
# travel in the deliverable instead.
COUNTERS = ("best_loss", "best_epoch", "bad_epochs", "epoch")


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without a validation loss lower by ``min_delta``; keep the best weights.

    It never stops before ``min_epochs``, so that one lucky or unlucky early
    epoch cannot end a trial; the kept weights are still the lowest-loss ones,
    and ``best_scores`` their validation scores.
    """

    patience: int
    min_delta: float = 0.0
    min_epochs: int = 1
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the kept weights
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_scores: Scores | None = None

    def step(self, epoch: int, val_loss: float, model: nn.Module, metrics: dict[str, float],
             scores: Scores | None = None) -> bool:
        """Record one epoch; True when it is the new best (and its weights are kept)."""
        self.epoch = epoch
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_metrics, self.best_scores = dict(metrics), scores
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience and self.epoch >= self.min_epochs

    def restore(self, counters: dict[str, Any], weights: dict[str, torch.Tensor], metrics: dict[str, float],
                scores: Scores | None) -> None:
        """Continue from the :data:`COUNTERS` of a resume state and one model's part of its deliverable."""
        vars(self).update({name: counters[name] for name in COUNTERS})
        self.best_state, self.best_metrics, self.best_scores = weights, dict(metrics), scores
