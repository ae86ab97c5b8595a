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


def augment_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip and jitter float images in [0, 1] shaped ``(n, C, H, W)``; returns a new tensor."""
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        # Draw on the CPU generator so results do not depend on the device.
        draws = torch.rand(n, 1, 1, 1, generator=generator)
        return (low + (high - low) * draws).to(images.device, images.dtype)

    flip = torch.rand(n, generator=generator).lt(0.5).to(images.device).view(n, 1, 1, 1)
    out = torch.where(flip, images.flip(-1), images)
    out = (out * uniform(1 - BRIGHTNESS, 1 + BRIGHTNESS)).clamp_(0, 1)
    # Contrast blends each image with the mean of its greyscale version, like torchvision.
    grey = _greyscale(out).mean(dim=(-3, -2, -1), keepdim=True)
    factor = uniform(1 - CONTRAST, 1 + CONTRAST)
    return (grey + factor * (out - grey)).clamp_(0, 1)


def _greyscale(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(dim=1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)
