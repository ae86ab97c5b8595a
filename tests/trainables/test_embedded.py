"""The embedded PneumoniaMNIST subsample: what ships is what the builder makes, loaded with readable class names."""

import numpy as np
import pytest

from tests.conftest import make_npz
from trainables import PNEUMONIA, load_datasets, preferred_image_size
from trainables.embedded import PNEUMONIA_COUNTS, PNEUMONIA_PATH, PNEUMONIA_SHA256, array_digest, subsample


def test_committed_file_is_the_recorded_one():
    assert PNEUMONIA_PATH.stat().st_size < 600_000  # small enough to live in the repository
    assert array_digest(PNEUMONIA_PATH) == PNEUMONIA_SHA256


def test_loads_with_official_split_sizes_and_pneumonia_as_the_rare_positive_class():
    d = load_datasets(PNEUMONIA, image_sizes=[preferred_image_size(PNEUMONIA)])[32]
    assert d.class_names == ("normal", "pneumonia") and d.channels == 1
    for split, (normal, pneumonia) in PNEUMONIA_COUNTS.items():
        assert d.split(split).class_counts() == (normal, pneumonia), split
    assert d.val.class_counts()[1] >= 50  # the report warns below 50 validation positives


def test_subsample_keeps_splits_and_is_seeded(tmp_path):
    path = make_npz(tmp_path / "m.npz", n={"train": (20, 8), "val": (6, 3), "test": (7, 2)})
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    counts = {"train": (5, 2), "val": (2, 1), "test": (3, 1)}
    a, b = subsample(arrays, counts, seed=0), subsample(arrays, counts, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for split, (neg, pos) in counts.items():
        assert np.bincount(a[f"{split}_labels"].ravel(), minlength=2).tolist() == [neg, pos]
    with pytest.raises(ValueError, match="split 'val' has 3 images of label 1; 4 were asked for"):
        subsample(arrays, {"val": (1, 4)}, seed=0)
