"""Image files and arrays decoded as training decodes them: 8-bit, 16-bit and float scans, resized alike.

The search (trainables.data), ``Classifier.predict_proba`` and
``search.predict`` all go through these functions, so that a model sees new
images exactly as it saw its training images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from trainables.errors import InputError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # Pillow modes of one-channel images
UINT16_MAX = 65535  # 16-bit pixels are scaled by their bit depth onto 0..255


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(n, C, H, W)`` images to ``(n, C, size, size)`` with antialiasing."""
    if images.shape[-2:] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), images.shape[1], size, size), dtype=np.uint8)
    for start in range(0, len(images), 512):  # bounded float32 memory for large sets
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + 512])).float()
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + 512] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def read_modes(files: Sequence[Path]) -> list[str]:
    modes = []
    for f in files:
        try:
            with Image.open(f) as im:
                modes.append(im.mode)
        except Image.DecompressionBombError as err:
            raise InputError(too_large(f, err)) from None
        except (UnidentifiedImageError, OSError) as err:
            raise InputError(f"cannot read image {str(f)!r}: {type(err).__name__}: {err}") from None
    return modes


def decode_image(path: Path, mode: str, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    try:
        with Image.open(path) as im:
            im.load()
            im = as_8bit(im, path).convert(mode)
    except Image.DecompressionBombError as err:
        raise InputError(too_large(path, err)) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"corrupt image {str(path)!r}: {err}") from None
    out = {}
    for s in sizes:
        arr = np.asarray(im.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=None))
        out[s] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return out


def as_8bit(im: Image.Image, path: Path) -> Image.Image:
    """16-bit, 32-bit and float greyscale as 8-bit "L", scaled by bit depth; Pillow's convert would clip.

    Pillow's ``convert("L")`` of a 16-bit PNG keeps values above 255 as 255,
    which turns most of a real scan white.
    """
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im
    x = np.asarray(im)
    if im.mode == "F":
        if not np.isfinite(x).all():
            raise InputError(f"image {str(path)!r} has a non-finite pixel; every pixel must be a number")
        low, high, depth = float(x.min()), float(x.max()), 1.0
    else:
        low, high, depth = int(x.min()), int(x.max()), UINT16_MAX
    if low < 0 or high > depth:
        expected = "[0, 1] for float images" if im.mode == "F" else f"0..{UINT16_MAX} (16 bits)"
        raise InputError(f"image {str(path)!r} ({im.mode}) has pixels in [{low:g}, {high:g}]; expected {expected}")
    scaled = np.round(x.astype(np.float64) * (255.0 / depth)).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def too_large(path: Path, err: Exception) -> str:
    return (f"image {str(path)!r} is too large to decode: {str(err).strip().rstrip('.')} "
            f"(Pillow's decompression-bomb guard); resize it")


def read_image(path: Path, *, channels: int, size: int) -> np.ndarray:
    """One image file as a model of ``channels`` input channels takes it: uint8 ``(channels, size, size)``.

    Grey images are repeated for a 3-channel model; a colour image becomes
    grey for a 1-channel model only when its channels are equal (a grey scan
    saved as RGB). InputError, in one line, for a file that cannot be read
    or a colour image a greyscale model cannot take.
    """
    mode = "L" if channels == 1 else "RGB"
    (found,) = read_modes([path])
    if channels == 1 and found not in GREY_MODES:
        rgb = decode_image(path, "RGB", [size])[size]
        if not (np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[1], rgb[2])):
            raise InputError(f"image {str(path)!r} is in colour ({found}), but the model was trained on "
                             "greyscale images; convert it to greyscale first if that is what it shows")
        return rgb[:1]
    return decode_image(path, mode, [size])[size]


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files among ``paths``: files as given, folders searched recursively (hidden files skipped), sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{str(path)!r} does not exist")
    return found
