import numpy as np

from trainables.identity import content_hashes, find_duplicates


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (8x8 noise upsampled), so that each has a picture of its own for the perceptual hash."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(np.random.default_rng(seed).uniform(30, 220, (n, 1, 8, 8)))
    return F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False).round().numpy().astype(np.uint8)


def test_exact_and_near_duplicates_are_found_and_distinct_images_are_not():
    images = _images(30)
    copy = images[3].copy()
    near = np.clip(images[7].astype(int) + 3, 0, 255).astype(np.uint8)  # a little brighter: other pixels, same picture
    data = np.concatenate([images, copy[None], near[None]])
    found = find_duplicates(data)
    assert found.exact == [(3, 30)]
    assert found.near == [(7, 31)]
    assert found.redundant() == {30, 31}  # the first of each group stays


def test_duplicates_are_counted_by_the_splits_they_join():
    images = _images(6)
    data = np.concatenate([images, images[:1]])
    splits = ["train"] * 4 + ["val", "test", "test"]
    assert find_duplicates(data).across(splits) == {"test-train": 1}


def test_content_hashes_see_one_changed_pixel():
    images = _images(2)
    changed = images.copy()
    changed[1, 0, 5, 5] ^= 1
    before, after = content_hashes(images), content_hashes(changed)
    assert before[0] == after[0] and before[1] != after[1]
