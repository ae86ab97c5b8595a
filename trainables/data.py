"""Load a data set: its source decoded once, duplicates found, split, at every image size a search needs.

Three sources are understood:

* ``"pneumonia"``: a 780-image subsample of PneumoniaMNIST shipped with the
  code (``trainables.embedded``), the command line's default.
* ``None`` or ``"digits"``: scikit-learn's bundled 8x8 digit scans (1,797
  real images, no download), made binary: the digits 3, 5 and 8 are the
  positive (minority, 30 %) class, every other digit is negative.
* a folder with exactly one sub-folder per class (``0/`` and ``1/``, or two
  class names); images in nested folders are found too.
* a MedMNIST-style ``.npz`` with ``{train,val,test}_{images,labels}``.

Images are kept as ``uint8`` arrays shaped ``(n, channels, size, size)``,
numpy rather than torch, so that Ray's object store shares them between
trials without a copy. Label 1 is always the positive (minority) class.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from trainables.embedded import (
    PNEUMONIA,
    PNEUMONIA_IMAGE_SIZE,
)
from trainables.errors import InputError
from trainables.identity import NEAR_SEARCH_MAX, content_hashes, find_duplicates, record_of

from trainables.dataset import Dataset
from trainables.sources import DIGITS_IMAGE_SIZE, binary_labels, decode, positive_last
from trainables.splits import SPLIT_NAMES, Split, check_both_classes, check_fractions, split_indices


def load_datasets(
    source: str | os.PathLike | None = None,
    *,
    image_sizes: Iterable[int],
    positive_class: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    dedup: bool = False,
) -> dict[int, Dataset]:
    """Decode ``source`` once and return one :class:`Dataset` per image size.

    Parameters
    ----------
    source : path, ``"digits"`` or None, default=None
        An image folder, a ``.npz`` file, ``"pneumonia"`` (the embedded chest X-rays) or the embedded digits.
    image_sizes : iterable of int
        Square sizes in pixels; every image is resized to each of them.
    positive_class : str, default=None
        Name (folder name, or label value for ``.npz``) of the positive class.
        None picks the minority class.
    seed : int, default=0
        Seed of the stratified split, for sources without their own splits.
    val_fraction, test_fraction : float, default=0.15
        Fractions of all images held out, for sources without their own splits.
    dedup : bool, default=False
        Drop exact and near duplicates (trainables.identity) before splitting,
        keeping the first of each group (a training image before its copies
        in validation or test, for sources with their own splits).

    Raises
    ------
    InputError
        Missing path, empty folder, corrupt image, labels that are not binary,
        or a split left without one of the classes.
    """
    sizes = sorted({_check_size(s) for s in image_sizes})
    if not sizes:
        raise InputError("no image size requested")
    check_fractions(val_fraction, test_fraction)
    decoded = decode(source, sizes)
    labels = binary_labels(decoded, positive_class)
    largest = decoded.images[sizes[-1]]
    hashes = content_hashes(largest)
    found = find_duplicates(largest, hashes=hashes) if len(labels) <= NEAR_SEARCH_MAX else None
    groups = found.groups(len(labels), labels) if found else np.arange(len(labels))
    dropped = sorted(found.redundant()) if dedup and found else []
    keep = np.setdiff1d(np.arange(len(labels)), dropped)
    try:
        index = {name: keep[idx] for name, idx in split_indices(
            None if decoded.split_of is None else decoded.split_of[keep], labels[keep], seed, val_fraction,
            test_fraction, groups=groups[keep]).items()}
    except InputError as err:
        if not dropped:
            raise
        raise InputError(f"{err} (--dedup removed {len(dropped)} of {len(labels)} images as duplicates; run "
                         "without --dedup to keep them, grouped so that no group spans two splits or folds)") from None
    names = positive_last(decoded, labels)
    record = record_of(decoded.source, names, hashes, labels, index, dropped, found, groups)
    datasets = {}
    for size, images in decoded.images.items():
        splits = {name: Split(images[idx], labels[idx], groups[idx]) for name, idx in index.items()}
        datasets[size] = Dataset(**splits, class_names=names, source=decoded.source, record=record)
    for name in SPLIT_NAMES:
        check_both_classes(name, datasets[sizes[0]].split(name), own_splits=decoded.split_of is not None)
    return datasets


def preferred_image_size(source: str | os.PathLike | None) -> int | None:
    """A source's own image size, if it has one: 32 px for the embedded sets; None lets each model choose."""
    if str(source) == PNEUMONIA:
        return PNEUMONIA_IMAGE_SIZE
    return DIGITS_IMAGE_SIZE if source is None or str(source) == "digits" else None


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise InputError(f"image size must be an integer >= 8 pixels; got {size!r}")
    return int(size)
