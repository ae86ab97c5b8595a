"""Train, validation and test splits of one source at one image size: what every trial trains and is judged on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.config import AUTO
from trainables.errors import InputError
from trainables.identity import DataRecord, seen_in

from trainables.splits import SPLIT_NAMES, Split, fold_indices, subset

FEW_VALIDATION_POSITIVES = 50  # below this, the run's start says validation metrics at a 0.5 cut are coarse
# K of --folds auto where validation holds fewer positives than that. Judged on 14 validation positives, the
# chosen model's test recall fell 0.07-0.23 short of its estimate; judged by 3-fold cross-validation, it came
# within 0.012 (benchmarks/selection_holdout.py --splits iid, docs/benchmarks.md).
AUTO_FOLDS = 5


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits at one image size."""

    train: Split
    val: Split
    test: Split
    class_names: tuple[str, str]  # (negative, positive)
    source: str
    record: DataRecord | None = None  # hashes, splits and duplicates of the source (trainables.identity)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    def split(self, name: str) -> Split:
        """The split called ``name`` (train, val or test)."""
        if name not in SPLIT_NAMES:
            raise InputError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def folds(self, k: int) -> list[tuple[Split, Split]]:
        """``k`` stratified (train, held-out) pairs over the train split; validation and test take no part.

        ``k`` = 1 is the data's own pair, (train, val). With folds the
        validation split is the calibration split: no fold model trains on it,
        stops on it or is chosen on it, so the fold ensemble's scores there are
        exchangeable with new images', and its operating threshold is set on them.
        """
        if k == 1:
            return [(self.train, self.val)]
        train = self.train
        return [(subset(train, fit), subset(train, held)) for fit, held in fold_indices(train.labels, k,
                                                                                          groups=train.groups)]

    def test_seen(self) -> np.ndarray:
        """Per test image, whether a (near-)identical image is in train or val (all False where groups are unknown)."""
        if any(self.split(name).groups is None for name in SPLIT_NAMES):
            return np.zeros(len(self.test), dtype=bool)
        return seen_in(self.test.groups, np.concatenate([self.train.groups, self.val.groups]))

    def folds_for(self, requested: int | str) -> int:
        """K of ``--folds``: an integer as given; ``auto``: :data:`AUTO_FOLDS` when validation holds fewer than
        :data:`FEW_VALIDATION_POSITIVES` positives (at most the smaller class of train), else 1."""
        if requested != AUTO:
            return int(requested)
        if self.val.class_counts()[1] >= FEW_VALIDATION_POSITIVES:
            return 1
        smaller = min(self.train.class_counts())
        return min(AUTO_FOLDS, smaller) if smaller >= 2 else 1

    def summary(self, folds: int = 1) -> str:
        """The splits with their class counts, the duplicates, and a note when trials judged on val see few positives.

        With ``folds`` > 1 trials are judged out-of-fold on all of train, so the note is not given.
        """
        parts = []
        for name in SPLIT_NAMES:
            neg, pos = self.split(name).class_counts()
            parts.append(f"{name} {neg + pos} ({pos} positive)")
        lines = [f"{self.source}: {self.image_size}x{self.image_size}x{self.channels}, "
                 f"positive class {self.class_names[1]!r}; " + ", ".join(parts)]
        if self.record is not None:
            lines.append(self.record.summary())
        positives = self.val.class_counts()[1]
        if positives < FEW_VALIDATION_POSITIVES and folds == 1:
            lines.append(f"note: validation holds {positives} positive images, so recall at a 0.5 cut moves in steps "
                         f"of 1/{positives} and the best of many trials on it is mostly luck, as is a threshold set on "
                         f"them; --folds {self.folds_for(AUTO)} (what --folds auto chooses here) judges every trial "
                         "out-of-fold on all of train instead, and sets the threshold on the validation split, which no fold model trains on")
        return "\n".join(lines)
