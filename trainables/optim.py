"""Registries of the optimisers and learning-rate schedules a config can name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SGD_MOMENTUM = 0.9  # as in the study

OPTIMIZERS: dict[str, Callable[[Any, float], torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM),
}

# Stepped once per epoch. Cosine decays to 0 at max_epochs, so the last epochs take small
# steps and the validation loss settles instead of jumping from epoch to epoch.
LR_SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]] = {
    "constant": lambda optimizer, epochs: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
    "cosine": lambda optimizer, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
}
