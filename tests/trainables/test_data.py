import numpy as np
import pytest

from tests.conftest import make_image_folder, make_npz
from trainables import InputError, load_datasets


def test_digits_default_is_binary_with_a_minority_and_stratified():
    datasets = load_datasets(None, image_sizes=[16, 32])
    assert set(datasets) == {16, 32}
    d = datasets[32]
    assert d.train.images.shape[1:] == (1, 32, 32) and d.train.images.dtype == np.uint8
    total = sum(len(d.split(s)) for s in ("train", "val", "test"))
    assert total == 1797
    rates = [d.split(s).labels.mean() for s in ("train", "val", "test")]
    assert all(0.25 <= r <= 0.33 for r in rates)  # minority near the study's 28 %
    assert max(rates) - min(rates) < 0.02  # stratified
    assert np.array_equal(datasets[16].test.labels, d.test.labels)  # one split for every size


def test_split_is_seeded():
    a = load_datasets(None, image_sizes=[16], seed=1)[16]
    b = load_datasets(None, image_sizes=[16], seed=1)[16]
    c = load_datasets(None, image_sizes=[16], seed=2)[16]
    assert np.array_equal(a.val.images, b.val.images)
    assert not np.array_equal(a.val.images, c.val.images)


def test_image_folder_minority_is_positive_and_resized(tmp_path):
    root = make_image_folder(tmp_path / "data", {"healthy": 30, "sick": 10})
    d = load_datasets(root, image_sizes=[16], val_fraction=0.25, test_fraction=0.25)[16]
    assert d.class_names == ("healthy", "sick")
    assert d.channels == 1 and d.image_size == 16
    assert sum(d.split(s).class_counts()[1] for s in ("train", "val", "test")) == 10
    # "sick" images are brighter (see make_image_folder), so label 1 must be the bright ones
    assert d.train.images[d.train.labels == 1].mean() > d.train.images[d.train.labels == 0].mean() + 50


def test_image_folder_positive_class_flag_and_rgb(tmp_path):
    root = make_image_folder(tmp_path / "data", {"a": 20, "b": 10}, mode="RGB")
    d = load_datasets(root, image_sizes=[16], positive_class="a", val_fraction=0.2, test_fraction=0.2)[16]
    assert d.class_names == ("b", "a") and d.channels == 3
    assert d.train.labels.mean() > 0.5


def test_npz_keeps_its_splits_and_label_shapes(tmp_path):
    path = make_npz(tmp_path / "m.npz", n={"train": (20, 8), "val": (6, 3), "test": (7, 2)}, channels=3)
    d = load_datasets(path, image_sizes=[16])[16]
    assert [len(d.split(s)) for s in ("train", "val", "test")] == [28, 9, 9]
    assert d.test.class_counts() == (7, 2)
    assert d.train.images.shape == (28, 3, 16, 16)


def test_npz_flat_labels_greyscale(tmp_path):
    path = make_npz(tmp_path / "m.npz", n={"train": (20, 8), "val": (6, 3), "test": (7, 2)}, column=False)
    assert load_datasets(path, image_sizes=[8])[8].channels == 1


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: make_image_folder(p / "d", {"only": 5}), "exactly two class folders"),
        (lambda p: make_image_folder(p / "d", {"a": 5, "b": 5, "c": 5}), "exactly two class folders"),
        (lambda p: (make_image_folder(p / "d", {"a": 5}), (p / "d" / "b").mkdir(), p / "d")[-1], "holds no image"),
        (lambda p: make_npz(p / "x.npz", n={"train": (9, 0), "val": (3, 0), "test": (3, 0)}), "only one class"),
        (lambda p: make_npz(p / "x.npz", n={"train": (20, 8), "val": (6, 0), "test": (7, 2)}), "split 'val' has no positive"),
    ],
    ids=["missing-path", "one-class-folder", "three-class-folders", "empty-class-folder", "npz-one-class", "split-without-minority"],
)
def test_bad_input_is_one_clear_line(tmp_path, build, match):
    with pytest.raises(InputError, match=match) as err:
        load_datasets(build(tmp_path), image_sizes=[16])
    assert "\n" not in str(err.value)


def test_corrupt_image_is_named(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 10, "b": 5})
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(InputError, match="broken.png"):
        load_datasets(root, image_sizes=[16])


def test_truncated_image_is_named(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 10, "b": 5}, size=64)
    data = (root / "a" / "img3.png").read_bytes()
    (root / "a" / "img3.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="img3.png"):
        load_datasets(root, image_sizes=[16])


def test_labels_not_binary(tmp_path):
    path = tmp_path / "multi.npz"
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = np.zeros((9, 8, 8), np.uint8)
        arrays[f"{split}_labels"] = np.arange(9) % 3
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="labels must be binary; found 3 classes"):
        load_datasets(path, image_sizes=[8])


def test_npz_missing_keys_and_unknown_positive_class(tmp_path):
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 4, 4)))
    with pytest.raises(InputError, match="lacks train_labels"):
        load_datasets(tmp_path / "bad.npz", image_sizes=[8])
    root = make_image_folder(tmp_path / "d", {"a": 10, "b": 5})
    with pytest.raises(InputError, match="--positive-class 'c' is not a class"):
        load_datasets(root, image_sizes=[8], positive_class="c")
