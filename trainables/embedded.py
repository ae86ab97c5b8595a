"""The embedded default data: a small, fixed subsample of PneumoniaMNIST, committed with the code.

PneumoniaMNIST (MedMNIST v2: Yang et al., Scientific Data 10, 41, 2023; licence
CC BY 4.0) holds 28x28 greyscale paediatric chest X-rays (Kermany et al., Cell
2018) with official train/val/test splits; label 0 is normal, 1 pneumonia.
The subsample keeps the official splits (each image stays in its split) and
makes pneumonia the rare class, about a quarter of each split, so that
the clinically natural positive class is also the minority the search must
not miss. It is sized so that ``make run`` answers within five minutes on two
CPUs: 780 images, about half a megabyte.

Rebuild it (seeded, so the same file comes out) from the full set with::

    python -m trainables.embedded /path/to/pneumoniamnist.npz
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

PNEUMONIA = "pneumonia"  # the name --data takes; also what search.json records
PNEUMONIA_PATH = Path(__file__).with_name("pneumoniamnist_small.npz")
PNEUMONIA_CLASS_NAMES = ("normal", "pneumonia")  # MedMNIST's label 0 and 1
PNEUMONIA_SOURCE = "PneumoniaMNIST subsample (embedded, CC BY 4.0)"
PNEUMONIA_IMAGE_SIZE = 32  # 28 px upsampled: the study's CNN needs a size divisible by 16
# (normal, pneumonia) images drawn from each official split. The official
# validation split has 135 normals; 50 pneumonia cases there keep the
# validation estimate of minority recall above the report's 50-example warning.
PNEUMONIA_COUNTS = {"train": (300, 100), "val": (130, 50), "test": (150, 50)}
PNEUMONIA_SEED = 0
PNEUMONIA_SHA256 = "93ce14e8a8332742f68ced5d8dc3cde340adeb6671af8f833c186b3414f8c9d9"  # array_digest of the committed file


def array_digest(path: Path) -> str:
    """SHA-256 of an .npz's arrays (names, shapes, dtypes, bytes): stable across zip metadata."""
    digest = hashlib.sha256()
    with np.load(path, allow_pickle=False) as archive:
        for name in sorted(archive.files):
            array = np.ascontiguousarray(archive[name])
            digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def subsample(arrays: dict[str, np.ndarray], counts: dict[str, tuple[int, int]], *, seed: int) -> dict[str, np.ndarray]:
    """Draw ``counts[split] = (label 0, label 1)`` images from each split of a MedMNIST-style archive.

    Images keep their split and their order within it; the draw is seeded.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, wanted in counts.items():
        labels = np.asarray(arrays[f"{split}_labels"]).reshape(-1)
        chosen = []
        for label, n in enumerate(wanted):
            pool = np.flatnonzero(labels == label)
            if n > len(pool):
                raise ValueError(f"split {split!r} has {len(pool)} images of label {label}; {n} were asked for")
            chosen.append(rng.choice(pool, size=n, replace=False))
        index = np.sort(np.concatenate(chosen))
        out[f"{split}_images"] = np.asarray(arrays[f"{split}_images"])[index]
        out[f"{split}_labels"] = np.asarray(arrays[f"{split}_labels"])[index]
    return out


def build(source: Path, out: Path = PNEUMONIA_PATH) -> str:
    """Write the subsample of the full PneumoniaMNIST ``source`` to ``out``; return its array digest."""
    with np.load(source, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    np.savez_compressed(out, **subsample(arrays, PNEUMONIA_COUNTS, seed=PNEUMONIA_SEED))
    return array_digest(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trainables.embedded /path/to/pneumoniamnist.npz")
    print(build(Path(sys.argv[1])))
