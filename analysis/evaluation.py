"""Reload a trial's kept model and score it: the only place the test split is read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import tune
from torch import nn

from trainables import Dataset, Split, TrialConfig, image_size_for, kept_model, load_datasets, load_state
from trainables.data import DIGITS_IMAGE_SIZE
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
    data = settings.get("data", {})
    source = data.get("source")
    source_size = DIGITS_IMAGE_SIZE if source is None else None
    sizes = {image_size_for(a, override=data.get("image_size"), source_default=source_size) for a in architectures}
    return load_datasets(source, image_sizes=sizes, positive_class=data.get("positive_class"),
                         seed=data.get("seed", 0), val_fraction=data.get("val_fraction", 0.15),
                         test_fraction=data.get("test_fraction", 0.15))


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
