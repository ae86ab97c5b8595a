"""The report's Grad-CAM figure: true positives, false negatives and false positives of the delivered model.

The heat maps come from trainables.explain, on the model as delivered (a
fold ensemble's maps come from all its members).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from trainables import Split  # noqa: E402
from trainables.classifier import Classifier  # noqa: E402
from trainables.explain import gradcam_maps, overlay  # noqa: E402

KINDS = {"true positive": (1, 1), "false negative": (1, 0), "false positive": (0, 1)}  # (label, prediction)


def pick_examples(y_true: np.ndarray, y_pred: np.ndarray, *, per_kind: int = 4) -> dict[str, np.ndarray]:
    """Up to ``per_kind`` indices of true positives, false negatives and false positives."""
    return {kind: np.flatnonzero((y_true == label) & (y_pred == pred))[:per_kind]
            for kind, (label, pred) in KINDS.items()}


def gradcam_figure(classifier: Classifier, split: Split, y_pred: np.ndarray, *, title: str,
                   per_kind: int = 4) -> Figure | None:
    """A grid of overlays: one row per kind (TP, FN, FP), ``per_kind`` test images each; None if no example."""
    examples = pick_examples(split.labels, y_pred, per_kind=per_kind)
    if not any(len(v) for v in examples.values()):
        return None
    fig, axes = plt.subplots(len(KINDS), per_kind, figsize=(1.9 * per_kind, 2.1 * len(KINDS)), squeeze=False)
    for row, (kind, indices) in enumerate(examples.items()):
        maps = gradcam_maps(classifier, split.images[indices]) if len(indices) else []
        for col in range(per_kind):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(indices):
                ax.imshow(overlay(split.images[indices[col]], maps[col]))
            if col == 0:
                total = int(np.sum((split.labels == KINDS[kind][0]) & (y_pred == KINDS[kind][1])))
                ax.set_title(f"{kind}: {len(indices)} of {total}" if total else f"{kind}: none", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
