"""One epoch of training, and evaluation: the loops over a split's batches, shaped for a trial's model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.splits import Split
from trainables.device import Placement, placement
from trainables.loader import BatchLoader
from trainables.models import get_spec
from trainables.scores import Scores

EVAL_BATCH_SIZE = 256  # images per forward pass when evaluating; no effect on results


def make_loader(
    split: Split,
    cfg: TrialConfig,
    *,
    batch_size: int,
    where: Placement,
    generator: torch.Generator | None = None,
    train: bool = False,
    sample_weights: torch.Tensor | None = None,
) -> BatchLoader:
    """A loader of ``split`` shaped for ``cfg``'s model; augmentation and shuffling on training only.

    Batch shapes stay fixed (full training batches; on a GPU, padded evaluation
    batches), so that cuDNN tunes and compiles its kernels once per worker.
    """
    spec = get_spec(cfg.architecture)
    images = _as_tensor(split.images).to(where.device)
    norm = spec.normalization()
    return BatchLoader(
        images,
        _as_tensor(split.labels),
        batch_size=batch_size,
        shuffle=train,
        sample_weights=sample_weights if train else None,
        augment=cfg.augment and train,
        channels=spec.in_channels(images.shape[1]),
        mean=norm[0] if norm else None,
        std=norm[1] if norm else None,
        generator=generator,
        memory_format=where.memory_format,
        drop_last=train,
        pad_last=not train and where.device.type == "cuda",
    )


def train_one_epoch(
    model: nn.Module, loader: BatchLoader, criterion: nn.Module, optimizer: torch.optim.Optimizer, where: Placement
) -> float:
    """One pass over the training loader; the mean loss per example (one host sync, at the end)."""
    model.train()
    total, count = torch.zeros((), device=loader.images.device), 0
    for x, y in loader:
        with where.autocast():
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(y)
        count += len(y)
    return float(total) / max(count, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader, where: Placement) -> tuple[float, Scores]:
    """Mean unweighted cross-entropy and the scores over ``loader``.

    The loss is the plain one whatever the trial's imbalance strategy, so that
    early stopping and the kept epoch mean the same across strategies.
    """
    model.eval()
    losses, labels, scores = [], [], []
    for x, y in loader:
        with where.autocast():
            logits = model(x)
        logits = logits[: len(y)].float()  # drop the padding of a last evaluation batch
        losses.append(nn.functional.cross_entropy(logits, y, reduction="sum"))
        labels.append(y)
        scores.append(logits.softmax(dim=1)[:, 1])
    y_true = torch.cat(labels).cpu().numpy()
    loss = float(torch.stack(losses).sum()) / max(len(y_true), 1)
    return loss, Scores(y_true, torch.cat(scores).cpu().numpy())


def score_split(model: nn.Module, cfg: TrialConfig, split: Split) -> Scores:
    """Positive-class probabilities of a trained model on one split."""
    where = placement(cfg.architecture, split.images.shape[-1], next(model.parameters()).device)
    return evaluate(model.to(memory_format=where.memory_format),
                    make_loader(split, cfg, batch_size=EVAL_BATCH_SIZE, where=where), where)[1]


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays from Ray's object store are read-only views of shared memory; torch
    # warns about that, but the tensors are never written to.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
