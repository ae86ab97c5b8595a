"""Grad-CAM heat maps of the positive class for a delivered model, with pytorch-grad-cam.

The maps come from the model as delivered: for an ensemble, every member's
layer (from the model registry: the study's CNNs, their last conv block's
activation; ResNets ``layer4[-1]``; EfficientNet-B0 ``features[-1]``) is a
target layer of one Grad-CAM of the ensemble's mean probability, and
pytorch-grad-cam averages the members' normalised maps.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from trainables.classifier import Classifier
from trainables.models import get_spec

POSITIVE = 1  # the positive class's column of _TwoColumns' output


class _TwoColumns(nn.Module):
    """The ensemble's probability p as ``[1 - p, p]``, the class-score layout pytorch-grad-cam's targets expect."""

    def __init__(self, ensemble: nn.Module) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.ensemble(images)
        return torch.stack([1 - p, p], dim=1)


def gradcam_maps(classifier: Classifier, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Heat maps ``(n, S, S)`` in [0, 1] of the positive class, for uint8 or [0, 1] float images as predict takes them."""
    inputs = classifier.as_input(images)
    layers = [get_spec(spec.architecture).gradcam_layer(member.model)
              for spec, member in zip(classifier.members, classifier.module.members, strict=True)]
    model = _TwoColumns(classifier.module).eval()
    maps = []
    with GradCAM(model=model, target_layers=layers) as cam:
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size].to(classifier.device)
            maps.append(cam(input_tensor=batch, targets=[ClassifierOutputTarget(POSITIVE)] * len(batch)))
    return np.concatenate(maps) if maps else np.zeros((0, classifier.image_size, classifier.image_size))


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """uint8 ``(C, H, W)`` image with its heat map ``(H, W)`` over it, as uint8 RGB ``(H, W, 3)``."""
    rgb = image.transpose(1, 2, 0).astype(np.float32) / 255.0
    rgb = np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb
    return show_cam_on_image(rgb, heat, use_rgb=True)


__all__ = ["gradcam_maps", "overlay"]
