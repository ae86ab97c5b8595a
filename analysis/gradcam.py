"""Grad-CAM heat maps of the positive class, with pytorch-grad-cam.

The layer comes from the model registry (the study's CNNs: the last conv
block's activation; ResNets: ``layer4[-1]``; EfficientNet-B0: ``features[-1]``).
The target is logit 1, the minority class, whatever the model predicted.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.image import show_cam_on_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from torch import nn  # noqa: E402

from trainables import Split, TrialConfig, get_spec, placement  # noqa: E402
from trainables.train import make_loader  # noqa: E402

POSITIVE = 1  # index of the minority class's logit
KINDS = {"true positive": (1, 1), "false negative": (1, 0), "false positive": (0, 1)}  # (label, prediction)


def gradcam_maps(model: nn.Module, inputs: torch.Tensor, layer: nn.Module) -> np.ndarray:
    """Heat maps ``(n, H, W)`` in [0, 1] of the positive class for model inputs ``(n, C, H, W)``."""
    model.eval()
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=inputs, targets=[ClassifierOutputTarget(POSITIVE)] * len(inputs))


def pick_examples(y_true: np.ndarray, y_pred: np.ndarray, *, per_kind: int = 4) -> dict[str, np.ndarray]:
    """Up to ``per_kind`` indices of true positives, false negatives and false positives."""
    return {kind: np.flatnonzero((y_true == label) & (y_pred == pred))[:per_kind]
            for kind, (label, pred) in KINDS.items()}


def gradcam_figure(model: nn.Module, cfg: TrialConfig, split: Split, y_pred: np.ndarray, *, title: str,
                   per_kind: int = 4) -> Figure | None:
    """A grid of overlays: one row per kind (TP, FN, FP), ``per_kind`` test images each; None if no example."""
    examples = pick_examples(split.labels, y_pred, per_kind=per_kind)
    if not any(len(v) for v in examples.values()):
        return None
    device = next(model.parameters()).device
    loader = make_loader(split, cfg, batch_size=1, where=placement(cfg.architecture, split.images.shape[-1], device))
    layer = get_spec(cfg.architecture).gradcam_layer(model)
    fig, axes = plt.subplots(len(KINDS), per_kind, figsize=(1.9 * per_kind, 2.1 * len(KINDS)), squeeze=False)
    for row, (kind, indices) in enumerate(examples.items()):
        maps = gradcam_maps(model, loader.prepare(torch.from_numpy(split.images[indices]).to(device)), layer) \
            if len(indices) else []
        for col in range(per_kind):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(indices):
                ax.imshow(show_cam_on_image(_as_rgb(split.images[indices[col]]), maps[col], use_rgb=True))
            if col == 0:
                total = int(np.sum((split.labels == KINDS[kind][0]) & (y_pred == KINDS[kind][1])))
                ax.set_title(f"{kind}: {len(indices)} of {total}" if total else f"{kind}: none", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 ``(C, H, W)`` to float ``(H, W, 3)`` in [0, 1], as show_cam_on_image wants."""
    rgb = image.transpose(1, 2, 0).astype(np.float32) / 255.0
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb
