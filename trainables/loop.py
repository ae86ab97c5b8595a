"""One epoch of training, and evaluation: the loops over a loader's batches."""

from __future__ import annotations

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.device import Placement, placement
from trainables.loader import EVAL_BATCH_SIZE, BatchLoader, model_loader
from trainables.models import get_spec
from trainables.scores import Scores
from trainables.splits import Split


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
    spec = get_spec(cfg.architecture)
    where = placement(spec, split.images.shape[-1], next(model.parameters()).device)
    return evaluate(model.to(memory_format=where.memory_format),
                    model_loader(split, spec, where, batch_size=EVAL_BATCH_SIZE), where)[1]
