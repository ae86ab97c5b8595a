"""What a data set is: a content hash per image, and the exact and near duplicates among its images.

A search records, at start, each image's hash and the split it went to
(``search.record``), so that the analysis can tell whether the data at the
same path is still the data the search saw. Duplicates matter on real sets:
an image in both train and test inflates every test figure, and public
ultrasound sets are reported to carry about 19 % duplicates.

Near duplicates are found with a perceptual hash (pHash, Zauner 2010, as the
``imagehash`` package computes it): the image at 32x32 greyscale, its 2-D DCT,
and a bit per low frequency (8x8, less the mean) above their median. Two
images whose hashes differ in at most ``NEAR_BITS`` bits look alike
(re-encoded, resized, re-windowed). Chest X-rays share their low
frequencies, so the threshold is strict: on PneumoniaMNIST's 5,856 images at
28 px, pairs within 0, 2, 4 and 6 bits numbered 31, 46, 283 and 2,204 (an
inline sweep, not kept), and an average hash of 8x8 pixels, tried first, put
46,936 pairs within 4 bits. At 32 px the run's start reports 29 identical and
14 near-identical pairs, 8 of them across train and validation and 1 across
train and test (``load_datasets("pneumoniamnist.npz", image_sizes=[32])[32].summary()``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dctn

HASH_SIDE = 32  # pixels of the image the DCT is taken of
FREQUENCIES = 8  # the lowest 8x8 frequencies make the 64 bits (the DC term's bit is always 0)
NEAR_BITS = 2  # at most this many differing bits of 64 make a near duplicate
_CHUNK = 1024  # rows of the pairwise comparison at a time, to bound memory


def content_hashes(images: np.ndarray) -> list[str]:
    """A short hash of each image's pixels (uint8 ``(n, C, H, W)``): equal hashes, equal images."""
    return [hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=8).hexdigest() for image in images]


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """The 64-bit pHash of each uint8 ``(n, C, H, W)`` image, as uint64."""
    grey = torch.from_numpy(np.ascontiguousarray(images)).float().mean(dim=1, keepdim=True)
    small = F.interpolate(grey, size=(HASH_SIDE, HASH_SIDE), mode="bilinear", antialias=True, align_corners=False)
    low = dctn(small[:, 0].numpy(), axes=(1, 2), norm="ortho")[:, :FREQUENCIES, :FREQUENCIES].reshape(len(images), -1)
    bits = low > np.median(low[:, 1:], axis=1, keepdims=True)
    bits[:, 0] = False  # the mean brightness says nothing of the picture
    return np.packbits(bits, axis=1, bitorder="little").view(np.uint64).ravel()


@dataclass(frozen=True)
class Duplicates:
    """Pairs of images (indices into the source) that are the same or look alike."""

    exact: list[tuple[int, int]]
    near: list[tuple[int, int]]  # near but not exact

    def across(self, split_of: Sequence[str]) -> dict[str, int]:
        """Counts of pairs by the splits they join, e.g. ``{"train-test": 3}``, exact and near together."""
        counts: dict[str, int] = {}
        for i, j in self.exact + self.near:
            key = "-".join(sorted((split_of[i], split_of[j])))
            counts[key] = counts.get(key, 0) + 1
        return counts

    def groups(self, n: int, labels: np.ndarray | None = None) -> np.ndarray:
        """Per image of ``n``, its group: the lowest index of the images it is (near-)identical to, itself if none.

        Pairs join transitively (union-find), so a chain of near duplicates is one group. With ``labels``,
        only pairs of the same label join: a copy under the other label cannot flatter an estimate
        (and flat images of either class share a perceptual hash).
        """
        parent = np.arange(n)

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in self.exact + self.near:
            if labels is not None and labels[i] != labels[j]:
                continue
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        return np.array([root(i) for i in range(n)], dtype=np.int64)

    def redundant(self) -> set[int]:
        """Indices to drop so that one image of each group of duplicates remains (the lowest index)."""
        pairs = self.exact + self.near
        if not pairs:
            return set()
        groups = self.groups(max(max(p) for p in pairs) + 1)
        return {int(i) for i in np.flatnonzero(groups != np.arange(len(groups)))}


def find_duplicates(images: np.ndarray, *, near_bits: int = NEAR_BITS, hashes: Sequence[str] | None = None
                    ) -> Duplicates:
    """Exact duplicates (same pixels) and near duplicates (pHashes within ``near_bits``) among ``images``.

    ``hashes`` are the images' :func:`content_hashes`, when the caller has them already.
    """
    hashes = content_hashes(images) if hashes is None else hashes
    first: dict[str, int] = {}
    exact = []
    for i, h in enumerate(hashes):
        if h in first:
            exact.append((first[h], i))
        else:
            first[h] = i
    same = set(exact)
    codes = perceptual_hashes(images)
    near = []
    for start in range(0, len(codes), _CHUNK):
        block = codes[start : start + _CHUNK, None] ^ codes[None, :]
        distance = np.unpackbits(block.view(np.uint8), axis=-1).reshape(block.shape + (64,)).sum(-1)
        for a, b in zip(*np.nonzero(distance <= near_bits), strict=True):
            i, j = start + int(a), int(b)
            if i < j and (i, j) not in same and hashes[i] != hashes[j]:
                near.append((i, j))
    return Duplicates(exact, near)


NEAR_SEARCH_MAX = 20_000  # images; the near-duplicate search compares every pair (3 s for 5,856 images)


@dataclass(frozen=True)
class DataRecord:
    """What a data set was when a search read it: each image's hash and label, the splits, the duplicates.

    Indices are positions in the source's own order (a folder's sorted files,
    an archive's train, val then test images). ``dropped`` are the duplicates
    ``--dedup`` left out.
    """

    source: str
    class_names: tuple[str, str]
    hashes: tuple[str, ...]
    labels: tuple[int, ...]
    splits: dict[str, tuple[int, ...]]
    dropped: tuple[int, ...]
    duplicates: dict[str, int]  # "exact", "near" (None-like -1 when not searched) and pairs per pair of splits
    # Per image, its group of (near-)identical images (Duplicates.groups): what splits and folds keep together.
    groups: tuple[int, ...] = ()

    def to_json(self) -> dict:
        return {"source": self.source, "class_names": list(self.class_names), "hashes": list(self.hashes),
                "labels": list(self.labels), "splits": {k: list(v) for k, v in self.splits.items()},
                "dropped": list(self.dropped), "duplicates": self.duplicates, "groups": list(self.groups)}

    def summary(self) -> str:
        """One line on the duplicates, for the run's start and the report."""
        d = self.duplicates
        near = "not searched (over 20,000 images)" if d.get("near", 0) < 0 else f"{d['near']} near-identical"
        across = ", ".join(f"{k} {v}" for k, v in d.items() if "-" in k and k.split("-")[0] != k.split("-")[1])
        dropped = f"; --dedup dropped {len(self.dropped)} images" if self.dropped else ""
        leaked = d.get("test images with a duplicate in train+val", 0)
        leak = (f"; {leaked} test images have a (near-)duplicate in train+val (the data's own splits: the report "
                "gives test results with and without them)" if leaked else "")
        return (f"duplicates: {d['exact']} identical and {near} pairs of images"
                + (f", across splits: {across}" if across else "") + dropped + leak)


def record_of(source: str, class_names: tuple[str, str], hashes: Sequence[str], labels: np.ndarray,
              splits: dict[str, np.ndarray], dropped: Sequence[int], found: Duplicates | None,
              groups: np.ndarray) -> DataRecord:
    """The :class:`DataRecord` of a decoded source (``hashes``: :func:`content_hashes` in source order)."""
    split_of = np.full(len(labels), "dropped", dtype=object)
    for name, idx in splits.items():
        split_of[idx] = name
    duplicates = {"exact": len(found.exact) if found else 0, "near": len(found.near) if found else -1}
    if found:
        duplicates.update(found.across(list(split_of)))
        duplicates["test images with a duplicate in train+val"] = int(seen_in(
            groups[splits["test"]], groups[np.concatenate([splits["train"], splits["val"]])]).sum())
    return DataRecord(source, tuple(class_names), tuple(hashes), tuple(int(v) for v in labels),
                      {k: tuple(int(i) for i in v) for k, v in splits.items()}, tuple(int(i) for i in dropped),
                      duplicates, tuple(int(g) for g in groups))


def seen_in(groups: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Per image of ``groups``, whether an image of its group is among ``others`` (e.g. test against train+val)."""
    return np.isin(groups, others)


def first_difference(recorded: dict, current: DataRecord) -> str | None:
    """How the data now differs from a recorded :class:`DataRecord` (its ``to_json``), in words; None if it does not."""
    now = current.to_json()
    old_hashes, new_hashes = recorded.get("hashes", []), now["hashes"]
    if len(old_hashes) != len(new_hashes):
        return f"it held {len(old_hashes)} images and now holds {len(new_hashes)}"
    changed = [i for i, (a, b) in enumerate(zip(old_hashes, new_hashes, strict=True)) if a != b]
    if changed:
        return f"{len(changed)} images changed (the first at position {changed[0]})"
    flipped = [i for i, (a, b) in enumerate(zip(recorded.get("labels", []), now["labels"], strict=True)) if a != b]
    if flipped:
        return f"{len(flipped)} labels changed (the first at position {flipped[0]})"
    for name, indices in now["splits"].items():
        if recorded.get("splits", {}).get(name) != indices:
            return f"its {name} split holds other images"
    return None
