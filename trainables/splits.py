"""A split of images, and how images are split: train/val/test, and the folds of the train split.

Identical and near-identical images (one group, trainables.identity) always
land on the same side: in the project's own train/val/test split of a source
and in the folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from trainables.errors import InputError

SPLIT_NAMES = ("train", "val", "test")

# Folds are one fixed partition of the train split, the same for every trial and every run on the same data,
# so that trials differ by their configuration alone.
FOLD_SEED = 0


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 ``(n, C, H, W)``, ``labels`` int64 ``(n,)`` in {0, 1}.

    ``groups`` (int64 ``(n,)``, or None when unknown) names each image's group of identical and
    near-identical images (trainables.identity): folds never separate a group.
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> tuple[int, int]:
        """Number of negative and positive examples."""
        return int((self.labels == 0).sum()), int((self.labels == 1).sum())


def split_indices(
    split_of: np.ndarray | None, labels: np.ndarray, seed: int, val_fraction: float, test_fraction: float, *,
    groups: np.ndarray,
) -> dict[str, np.ndarray]:
    """Keep the source's own splits, or make stratified seeded ones that keep each group of duplicates together.

    Groups are split as units, stratified by their first image's label (a group is almost always one image; a
    data set without duplicates is split exactly as image by image).
    """
    if split_of is not None:
        return {name: np.flatnonzero(split_of == i) for i, name in enumerate(SPLIT_NAMES)}
    units, first = np.unique(groups, return_index=True)
    unit_labels = labels[first]
    everything = np.arange(len(units))
    try:
        rest, test = train_test_split(everything, test_size=test_fraction, stratify=unit_labels, random_state=seed)
        train, val = train_test_split(
            rest, test_size=val_fraction / (1 - test_fraction), stratify=unit_labels[rest], random_state=seed
        )
    except ValueError as err:  # too few images of a class to stratify
        counts = np.bincount(labels, minlength=2)
        grouped = "" if len(units) == len(labels) else f", in {len(units)} groups of (near-)identical images"
        raise InputError(f"cannot split {len(labels)} images ({counts[0]} negative, {counts[1]} positive{grouped}) "
                         f"into train/val/test: {err}") from None
    member_of = np.searchsorted(units, groups)
    return {name: np.sort(np.flatnonzero(np.isin(member_of, part)))
            for name, part in (("train", train), ("val", val), ("test", test))}


def fold_indices(labels: np.ndarray, k: int, *, seed: int = FOLD_SEED,
                 groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded, disjoint (fit, held-out) index pairs whose held-out parts cover ``labels`` once.

    With ``groups`` that hold duplicates, a group is never split across folds (StratifiedGroupKFold);
    without, the folds are StratifiedKFold's, as they always were.
    """
    counts = np.bincount(labels, minlength=2)
    if not 2 <= k <= counts.min():
        raise InputError(f"--folds {k} needs 2 <= folds <= the images of the smaller class in train "
                         f"({counts.min()}: {counts[0]} negative, {counts[1]} positive)")
    if groups is not None and len(np.unique(groups)) < len(groups):
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(len(labels)), labels, groups)
    else:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    try:
        return [(np.sort(fit), np.sort(held)) for fit, held in folds]
    except ValueError as err:  # fewer groups than folds
        raise InputError(f"--folds {k}: the train split's {len(np.unique(groups))} groups of (near-)identical "
                         f"images cannot make {k} folds: {err}") from None


def subset(split: Split, index: np.ndarray) -> Split:
    """The images of ``split`` at ``index``, with their labels and groups."""
    return Split(split.images[index], split.labels[index], None if split.groups is None else split.groups[index])


def check_both_classes(name: str, split: Split, *, own_splits: bool) -> None:
    neg, pos = split.class_counts()
    if pos == 0 or neg == 0:
        missing = "positive (minority)" if pos == 0 else "negative"
        # A .npz keeps its own splits: the fractions do not apply to it.
        fix = (f"the .npz's splits are used as they are: add {missing} examples to {name}_images and {name}_labels"
               if own_splits else "add images or change the split fractions")
        raise InputError(f"split {name!r} has no {missing} example ({neg} negative, {pos} positive); {fix}")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < f < 1:
            raise InputError(f"{name} must be in (0, 1); got {f}")
    if val_fraction + test_fraction >= 1:
        raise InputError(f"val_fraction + test_fraction must be < 1; got {val_fraction + test_fraction}")
