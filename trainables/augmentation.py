"""The study's augmentation, applied to whole batches of tensors.

``RandomHorizontalFlip()`` then ``ColorJitter(brightness=0.2, contrast=0.2)``
as in the study, but drawn per image on a batch at once: torchvision's v2
transforms draw one set of parameters per call, so a batched call would flip
or darken every image of the batch alike. Brightness is applied before
contrast (torchvision picks a random order each time).
"""

from __future__ import annotations

import torch

BRIGHTNESS = 0.2  # factor drawn from [1 - 0.2, 1 + 0.2]
CONTRAST = 0.2


DRAWS_PER_IMAGE = 3  # flip, brightness, contrast


def augment_batch(images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Flip and jitter float images in [0, 1] shaped ``(n, C, H, W)``; returns a new tensor.

    ``draws`` holds ``(n, DRAWS_PER_IMAGE)`` uniform numbers in [0, 1) on the
    images' device (see :func:`draw_augmentations`): a batch needs no random
    numbers of its own, so no host-to-device copy per batch.
    """
    n = images.shape[0]
    flip_draw, brightness_draw, contrast_draw = draws.to(images.dtype).view(n, DRAWS_PER_IMAGE, 1, 1, 1).unbind(1)
    out = torch.where(flip_draw < 0.5, images.flip(-1), images)
    out = (out * (1 - BRIGHTNESS + 2 * BRIGHTNESS * brightness_draw)).clamp_(0, 1)
    # Contrast blends each image with the mean of its greyscale version, like torchvision.
    grey = _greyscale(out).mean(dim=(-3, -2, -1), keepdim=True)
    factor = 1 - CONTRAST + 2 * CONTRAST * contrast_draw
    return (grey + factor * (out - grey)).clamp_(0, 1)


def draw_augmentations(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The random numbers of ``count`` images' augmentation, drawn on the CPU generator (the same on any device)."""
    return torch.rand(count, DRAWS_PER_IMAGE, generator=generator).to(device)


def _greyscale(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(dim=1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)
