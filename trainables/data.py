"""Data sources, decoded once into uint8 arrays and split for training.

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
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from trainables.embedded import (
    PNEUMONIA,
    PNEUMONIA_CLASS_NAMES,
    PNEUMONIA_IMAGE_SIZE,
    PNEUMONIA_PATH,
    PNEUMONIA_SOURCE,
)
from trainables.config import AUTO
from trainables.errors import InputError
from trainables.images import GREY_MODES, IMAGE_EXTENSIONS, UINT16_MAX, decode_image, read_modes, resize_images
from trainables.identity import NEAR_SEARCH_MAX, DataRecord, content_hashes, find_duplicates, record_of, seen_in

DIGITS_POSITIVE = (3, 5, 8)  # look alike, so the rare class is not trivially separable
DIGITS_IMAGE_SIZE = 32  # pixels; the smallest size the study's CNN takes (divisible by 16)
SPLIT_NAMES = ("train", "val", "test")
FEW_VALIDATION_POSITIVES = 50  # below this, the run's start says validation metrics at a 0.5 cut are coarse
# K of --folds auto where validation holds fewer positives than that. Judged on 14 validation positives, the
# chosen model's test recall fell 0.07-0.23 short of its estimate; judged by 3-fold cross-validation, it came
# within 0.012 (benchmarks/selection_holdout.py --splits iid, docs/benchmarks.md).
AUTO_FOLDS = 5
# Folds are one fixed partition of the train split, the same for every trial and every run on the same data,
# so that trials differ by their configuration alone.
FOLD_SEED = 0
ZIP_SIGNATURE = b"PK\x03\x04"  # a .npz is a zip of .npy files
NPZ_KEYS = tuple(f"{split}_{kind}" for split in SPLIT_NAMES for kind in ("images", "labels"))


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
        return [(_subset(train, fit), _subset(train, held)) for fit, held in fold_indices(train.labels, k,
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


@dataclass(frozen=True)
class _Decoded:
    """A source decoded at several sizes, before splitting."""

    images: dict[int, np.ndarray]  # image size -> (n, C, size, size) uint8
    labels: np.ndarray  # original labels, before the positive class is chosen
    class_names: tuple[str, ...]  # name of each distinct label value, in sorted order
    split_of: np.ndarray | None  # per image, index into SPLIT_NAMES when the source has splits
    source: str


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
    _check_fractions(val_fraction, test_fraction)
    decoded = _decode(source, sizes)
    labels = _binary_labels(decoded, positive_class)
    largest = decoded.images[sizes[-1]]
    hashes = content_hashes(largest)
    found = find_duplicates(largest, hashes=hashes) if len(labels) <= NEAR_SEARCH_MAX else None
    groups = found.groups(len(labels), labels) if found else np.arange(len(labels))
    dropped = sorted(found.redundant()) if dedup and found else []
    keep = np.setdiff1d(np.arange(len(labels)), dropped)
    try:
        index = {name: keep[idx] for name, idx in _split_indices(
            None if decoded.split_of is None else decoded.split_of[keep], labels[keep], seed, val_fraction,
            test_fraction, groups=groups[keep]).items()}
    except InputError as err:
        if not dropped:
            raise
        raise InputError(f"{err} (--dedup removed {len(dropped)} of {len(labels)} images as duplicates; run "
                         "without --dedup to keep them, grouped so that no group spans two splits or folds)") from None
    names = _positive_last(decoded, labels)
    record = record_of(decoded.source, names, hashes, labels, index, dropped, found, groups)
    datasets = {}
    for size, images in decoded.images.items():
        splits = {name: Split(images[idx], labels[idx], groups[idx]) for name, idx in index.items()}
        datasets[size] = Dataset(**splits, class_names=names, source=decoded.source, record=record)
    for name in SPLIT_NAMES:
        _check_both_classes(name, datasets[sizes[0]].split(name), own_splits=decoded.split_of is not None)
    return datasets


def preferred_image_size(source: str | os.PathLike | None) -> int | None:
    """A source's own image size, if it has one: 32 px for the embedded sets; None lets each model choose."""
    if str(source) == PNEUMONIA:
        return PNEUMONIA_IMAGE_SIZE
    return DIGITS_IMAGE_SIZE if source is None or str(source) == "digits" else None


# --- sources --------------------------------------------------------------------------


def _decode(source: str | os.PathLike | None, sizes: Sequence[int]) -> _Decoded:
    if source is None or str(source) == "digits":
        return _decode_digits(sizes)
    if str(source) == PNEUMONIA:  # the embedded PneumoniaMNIST subsample (trainables.embedded)
        decoded = _decode_npz(PNEUMONIA_PATH, sizes)
        return replace(decoded, class_names=PNEUMONIA_CLASS_NAMES, source=PNEUMONIA_SOURCE)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"data path {str(path)!r} does not exist; pass an image folder, a .npz file, or omit --data for the embedded chest X-rays")
    if path.is_dir():
        return _decode_folder(path, sizes)
    if path.suffix == ".npz":
        return _decode_npz(path, sizes)
    raise InputError(f"data path {str(path)!r} is neither a folder nor a .npz file")


def _decode_digits(sizes: Sequence[int]) -> _Decoded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; stretch them to the full uint8 range.
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    labels = np.isin(digits.target, DIGITS_POSITIVE).astype(np.int64)
    positive = ", ".join(map(str, DIGITS_POSITIVE))
    return _Decoded(
        images={s: resize_images(images, s) for s in sizes},
        labels=labels,
        class_names=("other digits", f"digits {positive}"),
        split_of=None,
        source="digits (scikit-learn)",
    )


def _decode_npz(path: Path, sizes: Sequence[int]) -> _Decoded:
    archive = _open_npz(path)
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise InputError(f"{str(path)!r} lacks {', '.join(missing)}; a MedMNIST-style .npz has {', '.join(NPZ_KEYS)}")
        raw = {key: _npz_array(archive, key, path) for key in NPZ_KEYS}
    converted = _npz_as_uint8({f"{name}_images": raw[f"{name}_images"] for name in SPLIT_NAMES}, path)
    images, labels, split_of = [], [], []
    for i, name in enumerate(SPLIT_NAMES):
        x, y = converted[f"{name}_images"], raw[f"{name}_labels"]
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(x):
            raise InputError(f"{name}_labels has shape {y.shape}; expected ({len(x)},) or ({len(x)}, 1) to match {name}_images")
        images.append(x)
        labels.append(y)
        split_of.append(np.full(len(y), i))
    channels = {x.shape[1] for x in images}
    if len(channels) > 1:
        raise InputError(f"{str(path)!r}: splits have different channel counts {sorted(channels)}")
    all_labels = np.concatenate(labels)
    return _Decoded(
        images={s: np.concatenate([resize_images(x, s) for x in images]) for s in sizes},
        labels=all_labels,
        class_names=tuple(_label_name(v) for v in np.unique(all_labels)),
        split_of=np.concatenate(split_of),
        source=str(path),
    )


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """The archive, opened without pickle; a file that is not a zip of arrays is named as such.

    ``np.load`` takes anything that is not a zip or .npy for a pickle, and
    would advise ``allow_pickle``: wrong for a text file and unsafe anyway.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise InputError(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    if not head:
        raise InputError(f"{str(path)!r} is empty (0 bytes); expected a .npz archive written by numpy.savez")
    if head != ZIP_SIGNATURE:
        raise InputError(f"{str(path)!r} is not a .npz archive (it does not start with a zip signature); "
                         "write one with numpy.savez(path, train_images=..., train_labels=..., ...)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read {str(path)!r} as a .npz archive: {err}") from None


def _npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """One array of the archive; object arrays (pickles) are refused, not unpickled."""
    try:
        array = archive[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise InputError(f"{key} in {str(path)!r} holds Python objects (dtype object), not numbers; save it "
                             "as a numeric array, e.g. np.stack(images).astype(np.uint8)") from None
        raise InputError(f"cannot read {key} from {str(path)!r}: {err}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise InputError(f"cannot read {key} from {str(path)!r}: {err}") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputError(f"{key} in {str(path)!r} has dtype {array.dtype}; expected numbers")
    return array


def _npz_as_uint8(images: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """MedMNIST layouts (n, H, W) or (n, H, W, C) as uint8 (n, C, H, W), every split scaled alike.

    One scale for the whole archive, so that a pixel value means the same in
    every split: 16-bit integers by their bit depth (65535 -> 255), floats
    from [0, 1] (or [0, 255]). Clipping instead would turn most of a 16-bit
    image white; a NaN would hide the range, so non-finite pixels are refused.
    """
    shaped = {}
    for key, x in images.items():
        if x.ndim == 3:
            x = x[:, :, :, None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise InputError(f"{key} has shape {x.shape}; expected (n, H, W) or (n, H, W, C) with C = 1 or 3")
        shaped[key] = x
    scale = _pixel_scale(shaped, path)
    out = {}
    for key, x in shaped.items():
        if x.dtype != np.uint8 or scale != 1.0:
            x = np.clip(np.round(x.astype(np.float32) * scale), 0, 255).astype(np.uint8)
        out[key] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return out


def _pixel_scale(images: dict[str, np.ndarray], path: Path) -> float:
    """The factor that maps the archive's pixel values onto 0..255."""
    kinds = {key: "float" if np.issubdtype(x.dtype, np.floating) else "integer" for key, x in images.items()}
    if len(set(kinds.values())) > 1:
        found = ", ".join(f"{k} {images[k].dtype}" for k in kinds)
        raise InputError(f"{str(path)!r}: image arrays mix integer and float pixels ({found}); store every split alike")
    for key, x in images.items():
        if kinds[key] == "float" and not np.isfinite(x).all():
            index = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))[0])
            bad = x[index][~np.isfinite(x[index])][0]
            raise InputError(f"{str(path)!r}: {key}[{index}] has a non-finite pixel ({bad}); every pixel must be a number")
    nonempty = [x for x in images.values() if x.size]
    low = min((float(x.min()) for x in nonempty), default=0.0)
    high = max((float(x.max()) for x in nonempty), default=0.0)
    if "float" in kinds.values():
        if low >= 0 and high <= 1:
            return 255.0
        if low >= 0 and high <= 255:
            return 1.0
        raise InputError(f"{str(path)!r}: float pixels span [{low:g}, {high:g}]; expected [0, 1] or [0, 255]")
    sixteen_bit = any(x.dtype == np.uint16 for x in images.values()) or high > 255
    if low < 0 or high > UINT16_MAX:
        raise InputError(f"{str(path)!r}: integer pixels span [{low:g}, {high:g}]; expected 8-bit (0..255) "
                         f"or 16-bit (0..{UINT16_MAX}) values")
    return 255.0 / UINT16_MAX if sixteen_bit else 1.0


def _label_name(value) -> str:
    return str(value.item() if hasattr(value, "item") else value)


def _decode_folder(root: Path, sizes: Sequence[int]) -> _Decoded:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) != 2:
        found = ", ".join(p.name for p in class_dirs) or "none"
        raise InputError(f"{str(root)!r} must hold exactly two class folders (e.g. 0/ and 1/); found {len(class_dirs)}: {found}")
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        found = sorted(
            p for p in class_dir.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not found:
            raise InputError(f"class folder {str(class_dir)!r} holds no image ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        files += found
        labels += [label] * len(found)
    # Keep one channel when every image is greyscale; anything in colour makes all RGB.
    modes = read_modes(files)
    mode = "L" if all(m in GREY_MODES for m in modes) else "RGB"
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(lambda f: decode_image(f, mode, sizes), files))
    images = {s: np.stack([d[s] for d in decoded]) for s in sizes}
    return _Decoded(
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=tuple(p.name for p in class_dirs),
        split_of=None,
        source=str(root),
    )


# --- labels and splits ---------------------------------------------------------------


def _binary_labels(decoded: _Decoded, positive_class: str | None) -> np.ndarray:
    """Map the source's labels to {0, 1}, 1 being the positive class."""
    values, counts = np.unique(decoded.labels, return_counts=True)
    if len(values) < 2:
        raise InputError(f"{decoded.source}: only one class found ({', '.join(decoded.class_names) or 'no images'}); two are needed")
    if len(values) > 2:
        raise InputError(f"{decoded.source}: labels must be binary; found {len(values)} classes: {', '.join(decoded.class_names)}")
    names = list(decoded.class_names)
    if decoded.split_of is not None:  # the minority of the training split, which the strategies balance
        values, counts = np.unique(decoded.labels[decoded.split_of == 0], return_counts=True)
    if positive_class is None:
        positive = values[int(np.argmin(counts))] if len(counts) < 2 or counts[0] != counts[1] else values[1]
    elif positive_class in names:
        positive = values[names.index(positive_class)]
    else:
        raise InputError(f"--positive-class {positive_class!r} is not a class of {decoded.source}; classes are {', '.join(names)}")
    return (decoded.labels == positive).astype(np.int64)


def _positive_last(decoded: _Decoded, binary: np.ndarray) -> tuple[str, str]:
    """Class names ordered (negative, positive)."""
    values = list(np.unique(decoded.labels))
    positive = values.index(decoded.labels[binary == 1][0])
    return decoded.class_names[1 - positive], decoded.class_names[positive]


def _split_indices(
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


def _subset(split: Split, index: np.ndarray) -> Split:
    return Split(split.images[index], split.labels[index], None if split.groups is None else split.groups[index])


def _check_both_classes(name: str, split: Split, *, own_splits: bool) -> None:
    neg, pos = split.class_counts()
    if pos == 0 or neg == 0:
        missing = "positive (minority)" if pos == 0 else "negative"
        # A .npz keeps its own splits: the fractions do not apply to it.
        fix = (f"the .npz's splits are used as they are: add {missing} examples to {name}_images and {name}_labels"
               if own_splits else "add images or change the split fractions")
        raise InputError(f"split {name!r} has no {missing} example ({neg} negative, {pos} positive); {fix}")


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise InputError(f"image size must be an integer >= 8 pixels; got {size!r}")
    return int(size)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < f < 1:
            raise InputError(f"{name} must be in (0, 1); got {f}")
    if val_fraction + test_fraction >= 1:
        raise InputError(f"val_fraction + test_fraction must be < 1; got {val_fraction + test_fraction}")
