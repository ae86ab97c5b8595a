"""The sources a data set is decoded from, into uint8 arrays at each image size, before splitting.

Three kinds are understood:

* ``"pneumonia"``: a 780-image subsample of PneumoniaMNIST shipped with the
  code (``trainables.embedded``), the command line's default.
* ``None`` or ``"digits"``: scikit-learn's bundled 8x8 digit scans (1,797
  real images, no download), made binary: the digits 3, 5 and 8 are the
  positive (minority, 30 %) class, every other digit is negative.
* a folder with exactly one sub-folder per class (``0/`` and ``1/``, or two
  class names); images in nested folders are found too.
* a MedMNIST-style ``.npz`` with ``{train,val,test}_{images,labels}``.

Label 1 is always the positive (minority) class (:func:`binary_labels`).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from trainables.embedded import (
    PNEUMONIA,
    PNEUMONIA_CLASS_NAMES,
    PNEUMONIA_PATH,
    PNEUMONIA_SOURCE,
)
from trainables.errors import InputError
from trainables.images import GREY_MODES, IMAGE_EXTENSIONS, UINT16_MAX, decode_image, read_modes, resize_images

from trainables.splits import SPLIT_NAMES

DIGITS_POSITIVE = (3, 5, 8)  # look alike, so the rare class is not trivially separable
DIGITS_IMAGE_SIZE = 32  # pixels; the smallest size the study's CNN takes (divisible by 16)
ZIP_SIGNATURE = b"PK\x03\x04"  # a .npz is a zip of .npy files
NPZ_KEYS = tuple(f"{split}_{kind}" for split in SPLIT_NAMES for kind in ("images", "labels"))


@dataclass(frozen=True)
class Decoded:
    """A source decoded at several sizes, before splitting."""

    images: dict[int, np.ndarray]  # image size -> (n, C, size, size) uint8
    labels: np.ndarray  # original labels, before the positive class is chosen
    class_names: tuple[str, ...]  # name of each distinct label value, in sorted order
    split_of: np.ndarray | None  # per image, index into SPLIT_NAMES when the source has splits
    source: str


def decode(source: str | os.PathLike | None, sizes: Sequence[int]) -> Decoded:
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


def _decode_digits(sizes: Sequence[int]) -> Decoded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; stretch them to the full uint8 range.
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    labels = np.isin(digits.target, DIGITS_POSITIVE).astype(np.int64)
    positive = ", ".join(map(str, DIGITS_POSITIVE))
    return Decoded(
        images={s: resize_images(images, s) for s in sizes},
        labels=labels,
        class_names=("other digits", f"digits {positive}"),
        split_of=None,
        source="digits (scikit-learn)",
    )


def _decode_npz(path: Path, sizes: Sequence[int]) -> Decoded:
    archive = open_npz(path)
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise InputError(f"{str(path)!r} lacks {', '.join(missing)}; a MedMNIST-style .npz has {', '.join(NPZ_KEYS)}")
        raw = {key: npz_array(archive, key, path) for key in NPZ_KEYS}
    converted = npz_as_uint8({f"{name}_images": raw[f"{name}_images"] for name in SPLIT_NAMES}, path)
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
    return Decoded(
        images={s: np.concatenate([resize_images(x, s) for x in images]) for s in sizes},
        labels=all_labels,
        class_names=tuple(_label_name(v) for v in np.unique(all_labels)),
        split_of=np.concatenate(split_of),
        source=str(path),
    )


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
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


def npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
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


def npz_as_uint8(images: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
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


def _decode_folder(root: Path, sizes: Sequence[int]) -> Decoded:
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
    return Decoded(
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=tuple(p.name for p in class_dirs),
        split_of=None,
        source=str(root),
    )


# --- labels ------------------------------------------------------------------------


def binary_labels(decoded: Decoded, positive_class: str | None) -> np.ndarray:
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


def positive_last(decoded: Decoded, binary: np.ndarray) -> tuple[str, str]:
    """Class names ordered (negative, positive)."""
    values = list(np.unique(decoded.labels))
    positive = values.index(decoded.labels[binary == 1][0])
    return decoded.class_names[1 - positive], decoded.class_names[positive]
