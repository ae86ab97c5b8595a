"""The model a trial delivered, rebuilt from its deliverable (``kept.pt``) and scored on any split.

This is the one way the search, the analysis and the benchmarks load and
score a kept model. A trial with folds delivers one model per fold; the
delivered model is their mean probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainables.checkpoints import load_kept
from trainables.config import TrialConfig
from trainables.data import Split
from trainables.device import data_device
from trainables.models import create_model
from trainables.train import Scores, average_scores, delivered_threshold, kept_weights, pool_scores, score_split


@dataclass(frozen=True)
class KeptModel:
    """A trial's kept model(s) in eval mode, with its config, kept validation metrics and operating threshold."""

    models: tuple[nn.Module, ...]  # one per fold (one without folds)
    config: TrialConfig
    image_size: int
    metrics: dict[str, float]  # the kept state's validation metrics, as the trial reported them (without kept_)
    threshold: float  # operating threshold for config.target_recall, set on validation or out-of-fold scores
    out_of_fold: Scores | None = None  # with folds: each fold model's scores on its held-out images, pooled

    @property
    def model(self) -> nn.Module:
        """The first fold's model: the one model to explain (Grad-CAM) when there are several."""
        return self.models[0]

    def scores(self, split: Split) -> Scores:
        """Positive-class probabilities on ``split``: the mean over the fold models."""
        return average_scores([score_split(model, self.config, split) for model in self.models])

    def validation_scores(self, val: Split) -> Scores:
        """The scores the model was judged on: out-of-fold with folds (the val split is in their training), else val's."""
        return self.out_of_fold if self.out_of_fold is not None else self.scores(val)


def kept_model_from(kept: dict[str, Any], device: torch.device | None = None) -> KeptModel:
    """The :class:`KeptModel` of a deliverable (the ``kept`` part of a checkpoint), on ``device`` (default: data_device())."""
    cfg = TrialConfig.from_dict(kept["config"])
    device = data_device() if device is None else device
    models = []
    for weights in kept_weights(kept):
        model = create_model(cfg.architecture, in_channels=kept["data_channels"], image_size=kept["image_size"],
                             device=device)
        model.load_state_dict(weights)
        models.append(model.eval())
    metrics = {k: float(v) for k, v in kept["metrics"].items()}
    threshold = kept.get("threshold", delivered_threshold(metrics))
    folds = kept.get("fold_scores")
    out_of_fold = pool_scores([Scores(*pair) for pair in folds]) if folds else None
    return KeptModel(tuple(models), cfg, int(kept["image_size"]), metrics, float(threshold), out_of_fold)


def load_kept_model(checkpoint: Any, device: torch.device | None = None) -> KeptModel:
    """The :class:`KeptModel` in a checkpoint folder: a path, or a Ray ``Checkpoint`` on any storage."""
    if isinstance(checkpoint, (str, Path)):
        return kept_model_from(load_kept(checkpoint), device)
    with checkpoint.as_directory() as folder:
        return kept_model_from(load_kept(folder), device)


__all__ = ["KeptModel", "kept_model_from", "load_kept_model"]
