"""Shared fixtures: one local Ray per test session, and tiny data sets built on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables import Dataset, Split


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs, started once for every test that needs it."""
    import ray

    # address="local": never join a cluster someone else started on this machine with `ray start`.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def make_image_folder(root: Path, counts: dict[str, int], *, size: int = 12, mode: str = "L", seed: int = 0) -> Path:
    """A class-per-folder data set of random PNGs; class ``k``'s images are brighter with ``k``."""
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            shape = (size, size) if mode == "L" else (size, size, 3)
            pixels = rng.integers(0, 100, shape) + 100 * k
            Image.fromarray(pixels.astype(np.uint8), mode=None).convert(mode).save(folder / f"img{i}.png")
    return root


def make_npz(path: Path, *, n: dict[str, tuple[int, int]], size: int = 10, channels: int = 0, column: bool = True) -> Path:
    """A MedMNIST-style archive; ``n[split] = (negatives, positives)``; ``channels=0`` means (n, H, W)."""
    rng = np.random.default_rng(1)
    arrays = {}
    for split, (neg, pos) in n.items():
        labels = np.array([0] * neg + [1] * pos)
        shape = (len(labels), size, size) + ((channels,) if channels else ())
        arrays[f"{split}_images"] = rng.integers(0, 255, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = labels[:, None] if column else labels
    np.savez(path, **arrays)
    return path


def tiny_dataset(*, n: int = 48, size: int = 16, channels: int = 1, positive: float = 0.25, seed: int = 0) -> Dataset:
    """Random but learnable images: positives carry a bright square."""
    rng = np.random.default_rng(seed)

    def split(count: int) -> Split:
        labels = (np.arange(count) < max(1, int(count * positive))).astype(np.int64)
        images = rng.integers(0, 80, (count, channels, size, size)).astype(np.uint8)
        images[labels == 1, :, 2:8, 2:8] = 250
        return Split(images, labels)

    return Dataset(split(n), split(n // 2), split(n // 2), ("neg", "pos"), "tiny")


@pytest.fixture
def tiny() -> Dataset:
    return tiny_dataset()


@pytest.fixture(scope="session")
def smoke_experiment(ray_session, tmp_path_factory):
    """One real smoke experiment (4 trials, 16 px, 2 epochs), shared by every test of a session that reads one."""
    from search.run import build_parser, data_options, prepare_inputs, run, settings_from_args

    storage = tmp_path_factory.mktemp("results")
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", str(storage), "--name", "exp",
                                      "--image-size", "16", "--max-epochs", "2"])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    return run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
               data_options=data_options(args))
