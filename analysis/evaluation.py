"""Reload a trial's kept model and score it: the only place the test split is read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import tune
from torch import nn

from search.run import load_experiment_data
from trainables import Dataset, Split, TrialConfig, kept_model, load_state
from trainables.train import EVAL_BATCH_SIZE, data_device, evaluate, make_loader


@dataclass(frozen=True)
class Scores:
    """True labels and positive-class probabilities of one split."""

    y_true: np.ndarray
    y_score: np.ndarray

    def predictions(self, threshold: float | None = None) -> np.ndarray:
        """Hard labels: argmax (probability > 0.5) by default, else ``score >= threshold``."""
        if threshold is None:
            return (self.y_score > 0.5).astype(int)
        return (self.y_score >= threshold).astype(int)


def rebuild_datasets(settings: dict[str, Any], architectures: Iterable[str]) -> dict[int, Dataset]:
    """The experiment's data again, with the same source, splits and sizes (from search.json)."""
    return load_experiment_data(architectures, settings.get("data", {}))


def load_kept_model(checkpoint: tune.Checkpoint) -> tuple[nn.Module, TrialConfig, int]:
    """The kept (lowest-val-loss) model of a checkpoint, its config and its image size."""
    with checkpoint.as_directory() as folder:
        state = load_state(folder)
    model, cfg = kept_model(state)
    return model.to(data_device()), cfg, state["image_size"]


def score_split(model: nn.Module, cfg: TrialConfig, split: Split) -> Scores:
    """Positive-class probabilities of a model on one split."""
    device = next(model.parameters()).device
    loader = make_loader(split, cfg, batch_size=EVAL_BATCH_SIZE, device=device)
    _, y_true, y_score = evaluate(model, loader, nn.CrossEntropyLoss())
    return Scores(y_true, y_score)
