"""The model a trial delivered, rebuilt from its deliverable (``kept.pt``) and scored on any split.

This is the one way the search, the analysis and the benchmarks load and
score one trial's kept model. A trial with folds delivers one model per fold;
its :class:`~trainables.classifier.Classifier` is their mean probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.checkpoints import load_kept
from trainables.classifier import Classifier
from trainables.config import TrialConfig
from trainables.splits import Split
from trainables.device import data_device
from trainables.operating import OperatingPoint
from trainables.scores import Scores, pool_scores


@dataclass(frozen=True)
class KeptModel:
    """A trial's kept model(s) as a :class:`Classifier`, with its config, kept validation metrics and operating point."""

    classifier: Classifier
    config: TrialConfig
    metrics: dict[str, float]  # the kept state's validation metrics, as the trial reported them (without kept_)
    out_of_fold: Scores | None = None  # with folds: each fold model's scores on its held-out images, pooled (x seeds)

    @property
    def image_size(self) -> int:
        return self.classifier.image_size

    @property
    def operating_point(self) -> OperatingPoint:
        return self.classifier.operating_point

    @property
    def threshold(self) -> float:
        """The operating threshold delivered with the model (NaN when validation lacked a class)."""
        return self.classifier.threshold

    @property
    def folds(self) -> int:
        return self.config.folds

    @property
    def seeds(self) -> int:
        return self.config.seeds

    def scores(self, split: Split) -> Scores:
        """Positive-class probabilities on ``split``: the mean over the fold models."""
        return Scores(split.labels, self.classifier.predict_proba(split.images))

    def validation_scores(self, val: Split) -> Scores:
        """Its scores on the validation split, where its operating point was set (with folds, none trained on it)."""
        return self.scores(val)


def kept_model_from(kept: dict[str, Any], device: torch.device | None = None) -> KeptModel:
    """The :class:`KeptModel` of a deliverable (the ``kept`` part of a checkpoint), on ``device`` (default: data_device())."""
    cfg = TrialConfig.from_dict(kept["config"])
    point = kept.get("operating_point")
    point = OperatingPoint.from_json(point) if point else OperatingPoint(float("nan"), cfg.target_recall, 0, 0, "")
    classifier = Classifier.from_kept([kept], point, device=data_device() if device is None else device)
    folds = kept.get("fold_scores")
    out_of_fold = (pool_scores([Scores(*(np.asarray(part) for part in pair)) for pair in folds])
                   if folds and cfg.folds > 1 else None)
    metrics = {k: float(v) for k, v in kept["metrics"].items()}
    return KeptModel(classifier, cfg, metrics, out_of_fold)


def load_kept_model(checkpoint: Any, device: torch.device | None = None) -> KeptModel:
    """The :class:`KeptModel` in a checkpoint folder: a path, or a Ray ``Checkpoint`` on any storage."""
    if isinstance(checkpoint, (str, Path)):
        return kept_model_from(load_kept(checkpoint), device)
    with checkpoint.as_directory() as folder:
        return kept_model_from(load_kept(folder), device)


__all__ = ["KeptModel", "kept_model_from", "load_kept_model"]
