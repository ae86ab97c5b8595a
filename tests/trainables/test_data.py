import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_image_folder, make_npz, tiny_dataset
from trainables import AUTO, InputError, load_datasets
from trainables.dataset import AUTO_FOLDS
from trainables.splits import fold_indices


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


def _npz_with(path, images: dict, labels=None):
    """A three-split archive with the given image arrays and 4 negatives + 2 positives per split."""
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = images[split]
        arrays[f"{split}_labels"] = np.array([0, 0, 0, 0, 1, 1]) if labels is None else labels
    np.savez(path, **arrays)
    return path


def test_uint16_npz_is_scaled_by_bit_depth_not_clipped(tmp_path):
    """Regression: uint16 pixels were clipped at 255, so 99 % of a 16-bit image became white."""
    ramp = np.linspace(0, 65535, 6 * 8 * 8).round().astype(np.uint16).reshape(6, 8, 8)
    d = load_datasets(_npz_with(tmp_path / "u16.npz", {s: ramp for s in ("train", "val", "test")}), image_sizes=[8])[8]
    expected = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(d.train.images[:, 0], expected)
    assert (d.train.images == 255).mean() < 0.01


def test_a_nan_pixel_in_a_float_npz_is_refused_with_split_and_index(tmp_path):
    """Regression: one NaN made max() NaN, switched off the [0, 1] -> [0, 255] scaling, and was clipped to 0."""
    clean = np.full((6, 8, 8), 0.5, np.float32)
    dirty = clean.copy()
    dirty[3, 2, 2] = np.nan
    path = _npz_with(tmp_path / "f.npz", {"train": clean, "val": dirty, "test": clean})
    with pytest.raises(InputError) as err:
        load_datasets(path, image_sizes=[8])
    assert str(err.value) == f"{str(path)!r}: val_images[3] has a non-finite pixel (nan); every pixel must be a number"


def test_float_npz_in_unit_range_is_scaled_to_255(tmp_path):
    x = np.full((6, 8, 8), 0.5, np.float32)
    d = load_datasets(_npz_with(tmp_path / "f.npz", {s: x for s in ("train", "val", "test")}), image_sizes=[8])[8]
    assert (d.test.images == 128).all()


def test_16_bit_png_is_scaled_by_bit_depth_not_clipped(tmp_path):
    """Regression: Pillow's convert("L") of an I;16 PNG clips at 255."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("a", "b")):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(6 + 4 * k):  # noise of up to 4 8-bit steps: distinct images, not near duplicates
            pixels = 20000 + 30000 * k + rng.integers(0, 1024, (8, 8))
            Image.fromarray(pixels.astype(np.uint16)).save(tmp_path / "d" / name / f"{i}.png")
    assert Image.open(tmp_path / "d" / "a" / "0.png").mode.startswith("I;16")
    d = load_datasets(tmp_path / "d", image_sizes=[8], val_fraction=0.25, test_fraction=0.25)[8]
    for k, base in enumerate((20000, 50000)):  # clipping would have made every pixel 255
        images = d.train.images[d.train.labels == (k if d.class_names[1] == "b" else 1 - k)]
        assert round(base * 255 / 65535) <= images.min() and images.max() <= round((base + 1023) * 255 / 65535)


def test_empty_npz_is_one_line(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(InputError) as err:
        load_datasets(tmp_path / "e.npz", image_sizes=[8])
    assert str(err.value) == f"{str(tmp_path / 'e.npz')!r} is empty (0 bytes); expected a .npz archive written by numpy.savez"


def test_text_file_named_npz_is_not_called_pickled_data(tmp_path):
    """Regression: np.load took a text file for a pickle and the message advised allow_pickle."""
    (tmp_path / "t.npz").write_text("train_images,train_labels\n1,2\n")
    with pytest.raises(InputError) as err:
        load_datasets(tmp_path / "t.npz", image_sizes=[8])
    assert str(err.value) == (f"{str(tmp_path / 't.npz')!r} is not a .npz archive (it does not start with a zip "
                              "signature); write one with numpy.savez(path, train_images=..., train_labels=..., ...)")
    assert "pickle" not in str(err.value)


def test_object_dtype_npz_is_one_line(tmp_path):
    images = np.empty(6, dtype=object)
    images[:] = [np.zeros((8, 8))] * 6
    path = _npz_with(tmp_path / "o.npz", {"train": images, "val": np.zeros((6, 8, 8)), "test": np.zeros((6, 8, 8))})
    with pytest.raises(InputError) as err:
        load_datasets(path, image_sizes=[8])
    assert str(err.value) == (f"train_images in {str(path)!r} holds Python objects (dtype object), not numbers; "
                              "save it as a numeric array, e.g. np.stack(images).astype(np.uint8)")


def test_image_over_the_decompression_bomb_limit_is_one_line(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "d", {"a": 6, "b": 4}, size=12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 12 x 12 = 144 pixels, over twice the limit
    with pytest.raises(InputError) as err:
        load_datasets(root, image_sizes=[8])
    assert str(err.value) == (f"image {str(root / 'a' / 'img0.png')!r} is too large to decode: Image size (144 pixels) "
                              "exceeds limit of 100 pixels, could be decompression bomb DOS attack "
                              "(Pillow's decompression-bomb guard); resize it")


def test_npz_split_without_a_class_does_not_suggest_split_fractions(tmp_path):
    """Regression: the fix offered for an .npz, whose splits are kept, was to change the split fractions."""
    path = make_npz(tmp_path / "x.npz", n={"train": (20, 8), "val": (6, 0), "test": (7, 2)})
    with pytest.raises(InputError) as err:
        load_datasets(path, image_sizes=[16])
    assert str(err.value) == ("split 'val' has no positive (minority) example (6 negative, 0 positive); the .npz's "
                              "splits are used as they are: add positive (minority) examples to val_images and val_labels")


def test_folds_are_stratified_disjoint_and_cover_train_and_val_once():
    labels = np.array([1] * 23 + [0] * 77)
    folds = fold_indices(labels, 5)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(100))  # every image held out exactly once
    for fit, held_out in folds:
        assert not set(fit) & set(held_out) and len(fit) + len(held_out) == 100
        assert labels[held_out].sum() in (4, 5)  # 23 positives over 5 folds: stratified
    again = fold_indices(labels, 5)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(folds, again))  # seeded: the same for every trial


def test_dataset_folds_draw_on_train_only(tiny):
    """Validation is the fold ensemble's calibration split and test the final judge: neither is in a fold."""
    folds = tiny.folds(3)
    held_images = np.concatenate([val.images for _, val in folds])
    assert sorted(map(bytes, held_images)) == sorted(map(bytes, tiny.train.images))
    kept_out = set(map(bytes, tiny.test.images)) | set(map(bytes, tiny.val.images))
    assert not any(bytes(image) in kept_out for fit, val in folds for image in [*fit.images, *val.images])
    assert tiny.folds(1) == [(tiny.train, tiny.val)]


@pytest.mark.parametrize("k", [1, 19])
def test_folds_need_two_and_at_most_the_smaller_class(tiny, k):
    with pytest.raises(InputError, match=f"--folds {k} needs 2 <= folds <= the images of the smaller class"):
        fold_indices(tiny.train.labels, k)


def test_the_start_notes_few_validation_positives_unless_trials_are_judged_out_of_fold(tiny):
    assert "note: validation holds 6 positive images" in tiny.summary()
    assert "note:" not in tiny.summary(folds=3)


def test_folds_auto_cross_validates_where_validation_holds_few_positives(tiny):
    assert tiny.folds_for(AUTO) == AUTO_FOLDS and tiny.folds_for(3) == 3 and tiny.folds_for(1) == 1  # 6 positives
    assert tiny_dataset(n=400, positive=0.5).folds_for(AUTO) == 1  # 100 validation positives
    assert tiny_dataset(n=8).folds_for(AUTO) == 2  # 2 positives in train: as many folds as that allows


def _folder_with_planted_copies(root, *, negatives: int = 30, positives: int = 12, identical: bool = False):
    """Each image twice: once as is, once with one pixel changed (a near duplicate), or identical."""
    rng = np.random.default_rng(0)
    for name, count in (("neg", negatives), ("pos", positives)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            base = np.zeros((16, 16), np.uint8) if identical else rng.integers(0, 256, (16, 16)).astype(np.uint8)
            base = base + (100 if name == "pos" and identical else 0)
            Image.fromarray(base.astype(np.uint8)).save(root / name / f"a{i}.png")
            twin = base.copy()
            if not identical:
                twin[0, 0] ^= 1
            Image.fromarray(twin.astype(np.uint8)).save(root / name / f"a{i}_twin.png")
    return root


def _groups_by_part(parts: dict) -> dict[int, set]:
    where: dict[int, set] = {}
    for name, split in parts.items():
        for group in split.groups:
            where.setdefault(int(group), set()).add(name)
    return where


def test_no_group_of_near_duplicates_straddles_the_splits_or_the_folds(tmp_path):
    data = load_datasets(str(_folder_with_planted_copies(tmp_path)), image_sizes=[16])[16]
    assert data.record.duplicates["near"] == 42 and data.record.to_json()["groups"]
    pairs_by_splits = {k for k in data.record.duplicates if k.count("-") == 1 and " " not in k}
    assert pairs_by_splits <= {"train-train", "val-val", "test-test"}, data.record.duplicates
    where = _groups_by_part({name: data.split(name) for name in ("train", "val", "test")})
    assert len(where) == 42 and all(len(parts) == 1 for parts in where.values())
    folds = _groups_by_part({i: held for i, (_, held) in enumerate(data.folds(3))})
    assert all(len(parts) == 1 for parts in folds.values())
    assert not data.test_seen().any()


def test_an_archives_own_splits_are_kept_and_its_leaks_counted(tmp_path):
    path = make_npz(tmp_path / "d.npz", n={"train": (20, 8), "val": (8, 4), "test": (8, 4)}, size=16)
    arrays = dict(np.load(path))
    arrays["test_images"][:3] = arrays["train_images"][:3]  # three test images copied from train
    arrays["test_labels"][:3] = arrays["train_labels"][:3]
    np.savez(path, **arrays)
    data = load_datasets(str(path), image_sizes=[16])[16]
    assert data.test_seen().tolist() == [True] * 3 + [False] * 9
    assert data.record.duplicates["test images with a duplicate in train+val"] == 3
    assert "3 test images have a (near-)duplicate in train+val" in data.summary()


def test_dedup_that_leaves_too_few_images_says_how_many_it_removed(tmp_path):
    """The issue's 60-image folder whose images are identical within each class: two images are left."""
    rng = np.random.default_rng(0)
    for name in ("neg", "pos"):
        (tmp_path / name).mkdir()
        image = rng.integers(0, 256, (16, 16)).astype(np.uint8)
        for i in range(30):
            Image.fromarray(image).save(tmp_path / name / f"{i}.png")
    with pytest.raises(InputError, match=r"--dedup removed 58 of 60 images as duplicates; run without --dedup"):
        load_datasets(str(tmp_path), image_sizes=[16], dedup=True)
