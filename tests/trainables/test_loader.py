import pytest
import torch

from trainables import BatchLoader, augment_batch
from trainables.augmentation import draw_augmentations


def test_augmentation_is_per_image_and_stays_in_range():
    images = torch.linspace(0, 1, 16 * 3 * 8 * 8).view(16, 3, 8, 8)
    out = augment_batch(images, draw_augmentations(16, torch.Generator().manual_seed(0), images.device))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    # Each image gets its own flip: some come out mirrored, some do not.
    flipped = [torch.allclose(_normalise(out[i]), _normalise(images[i].flip(-1)), atol=1e-4) for i in range(16)]
    assert 0 < sum(flipped) < 16


def test_augmentation_is_reproducible_from_the_generator():
    images = torch.rand(8, 1, 8, 8)
    a = augment_batch(images, draw_augmentations(8, torch.Generator().manual_seed(5), images.device))
    b = augment_batch(images, draw_augmentations(8, torch.Generator().manual_seed(5), images.device))
    assert torch.equal(a, b) and not torch.equal(a, images)


def test_loader_widens_grey_and_normalises():
    images = torch.full((5, 1, 4, 4), 255, dtype=torch.uint8)
    loader = BatchLoader(images, torch.zeros(5, dtype=torch.long), batch_size=2, channels=3,
                         mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and [len(y) for _, y in batches] == [2, 2, 1]
    assert batches[0][0].shape == (2, 3, 4, 4) and torch.allclose(batches[0][0], torch.full((2, 3, 4, 4), 2.0))


def test_shuffled_epochs_differ_and_cover_every_image():
    loader = BatchLoader(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10), batch_size=4, shuffle=True)
    first, second = loader.order(), loader.order()
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)


def test_training_batches_have_one_shape_and_evaluation_batches_are_padded():
    images, labels = torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10)
    train = BatchLoader(images, labels, batch_size=4, shuffle=True, drop_last=True)
    assert len(train) == 2 and [x.shape[0] for x, _ in train] == [4, 4]
    small = BatchLoader(images[:3], labels[:3], batch_size=4, drop_last=True)  # fewer than a batch: one partial
    assert [len(y) for _, y in small] == [3]
    padded = list(BatchLoader(images, labels, batch_size=4, pad_last=True))
    assert [x.shape[0] for x, _ in padded] == [4, 4, 4] and [len(y) for _, y in padded] == [4, 4, 2]


def test_loader_refuses_float_images():
    with pytest.raises(TypeError, match="uint8"):
        BatchLoader(torch.zeros(2, 1, 2, 2), torch.zeros(2), batch_size=1)


def _normalise(image: torch.Tensor) -> torch.Tensor:
    """Undo brightness/contrast up to an affine map, so only the geometry is compared."""
    centred = image - image.mean()
    return centred / centred.norm()
