"""``python -m search.predict <model> <images> --out predictions.csv``: the delivered model on new images.

``<model>`` is a folder written by ``search.export`` or a finished experiment;
``<images>`` are image files, folders (searched recursively) or one ``.npz``
archive (its ``--split``). Images are decoded and resized as the training
images were. Each row of the CSV is ``image, probability, positive``, with
``positive`` = 1 where the probability reaches the model's one operating
threshold. No Ray is started (or imported). Bad input is one line on stderr
and exit status 2, before any row is written; the CSV appears whole or not
at all.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from search.cli import OneLineParser
from search.files import umask
from trainables.classifier import PREDICT_BATCH, Classifier
from trainables.errors import InputError
from trainables.images import find_images, read_image, resize_images

GRADCAM_WHICH = ("positive", "all")


def image_batches(classifier: Classifier, sources: Sequence[str], *, split: str,
                  batch_size: int) -> tuple[int, Iterator[tuple[list[str], np.ndarray]]]:
    """(number of images, batches of (names, uint8 images)) of ``sources``, decoded as the model's training data was."""
    if len(sources) == 1 and str(sources[0]).endswith(".npz"):
        images = _npz_split(Path(sources[0]), split, classifier)
        names = [f"{Path(sources[0]).name}:{split}[{i}]" for i in range(len(images))]
        return len(images), ((names[i:i + batch_size], images[i:i + batch_size])
                             for i in range(0, len(images), batch_size))
    if any(str(s).endswith(".npz") for s in sources):
        raise InputError("pass one .npz archive alone, or image files and folders")
    files = find_images(sources)
    if not files:
        raise InputError(f"no image found in {', '.join(map(repr, map(str, sources)))} "
                         "(.png, .jpg, .jpeg, .bmp, .tif, .tiff, .gif, .webp)")

    def batches() -> Iterator[tuple[list[str], np.ndarray]]:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            yield [str(f) for f in chunk], np.stack([read_image(f, channels=classifier.channels,
                                                                size=classifier.image_size) for f in chunk])

    return len(files), batches()


def _npz_split(path: Path, split: str, classifier: Classifier) -> np.ndarray:
    """One split of a MedMNIST-style archive, scaled to uint8 and resized as trainables.sources does."""
    from trainables.sources import NPZ_KEYS, npz_array, npz_as_uint8, open_npz

    key = f"{split}_images"
    if key not in NPZ_KEYS:
        raise InputError(f"--split must be train, val or test; got {split!r}")
    with open_npz(path) as archive:
        if key not in archive.files:
            raise InputError(f"{str(path)!r} has no {key}; it holds {', '.join(archive.files)}")
        images = npz_as_uint8({key: npz_array(archive, key, path)}, path)[key]
    if images.shape[1] != classifier.channels:
        if classifier.channels == 1 and not (images == images[:, :1]).all():
            raise InputError(f"{key} in {str(path)!r} is in colour, but the model was trained on greyscale images")
        images = images[:, :1] if classifier.channels == 1 else np.repeat(images, 3, axis=1)
    return resize_images(images, classifier.image_size)


def predict(classifier: Classifier, sources: Sequence[str], out: Path, *, split: str = "test",
            batch_size: int = PREDICT_BATCH, gradcam: Path | None = None, gradcam_which: str = "positive",
            progress: bool = False) -> int:
    """Write ``out`` (atomically) with one row per image; heat maps to ``gradcam``; returns the number of images."""
    count, batches = image_batches(classifier, sources, split=split, batch_size=batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f, _progress(count, progress) as bar:
            writer = csv.writer(f)
            writer.writerow(["image", "probability", "positive"])
            for names, images in batches:
                probability = classifier.predict_proba(images, batch_size=batch_size)
                positive = (probability >= classifier.threshold).astype(int)
                writer.writerows(zip(names, (f"{p:.6f}" for p in probability), positive, strict=True))
                if gradcam is not None:
                    _write_gradcams(classifier, gradcam, names, images, positive, which=gradcam_which)
                bar.update(len(names))
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _write_gradcams(classifier: Classifier, folder: Path, names: list[str], images: np.ndarray,
                    positive: np.ndarray, *, which: str) -> None:
    from PIL import Image

    from trainables.explain import gradcam_maps, overlay

    chosen = np.flatnonzero(positive == 1) if which == "positive" else np.arange(len(names))
    if not len(chosen):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i, heat in zip(chosen, gradcam_maps(classifier, images[chosen]), strict=True):
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in names[i].lstrip("/"))
        Image.fromarray(overlay(images[i], heat)).save(folder / f"{stem}.gradcam.png")


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="image", disable=not enabled, file=sys.stderr)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is visible here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device must be auto, cpu or cuda[:N]; got {name!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a folder written by search.export, or a finished experiment (also a "
                        "bucket's URI, s3://...)")
    parser.add_argument("images", nargs="+", help="image files, folders (searched recursively), or one .npz")
    parser.add_argument("--out", required=True, help="the CSV to write: image, probability, positive")
    parser.add_argument("--split", default="test", help="with an .npz: which split's images (train, val or test)")
    parser.add_argument("--gradcam", default=None, metavar="DIR", help="also write a Grad-CAM overlay per image here")
    parser.add_argument("--gradcam-which", choices=GRADCAM_WHICH, default="positive",
                        help="with --gradcam: images called positive, or all")
    parser.add_argument("--batch-size", type=int, default=PREDICT_BATCH)
    parser.add_argument("--device", default="auto", help="auto (a GPU when one is visible), cpu or cuda[:N]")
    args = parser.parse_args(argv)
    try:
        if args.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1; got {args.batch_size}")
        classifier = Classifier.load(args.model, device=_device(args.device))
        count = predict(classifier, args.images, Path(args.out), split=args.split, batch_size=args.batch_size,
                        gradcam=Path(args.gradcam) if args.gradcam else None, gradcam_which=args.gradcam_which,
                        progress=sys.stderr.isatty())
    except InputError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"{count} images scored at threshold {classifier.threshold:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
