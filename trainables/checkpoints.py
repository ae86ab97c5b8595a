"""A trial's checkpoint: what it holds, where it is written, and when a trial writes one.

A checkpoint folder holds up to two files, because they live for different times:

- ``kept.pt``, the trial's deliverable: its kept (lowest validation loss)
  weights, config, kept metrics and the data shape they take. It outlives
  the trial, for as long as the experiment's retention keeps it
  (``search.retention``).
- ``resume.pt``, what continues a running trial: current weights, optimiser,
  random generators (CPU and CUDA), early-stopping counters.
  It exists only while a trial can still continue: a trial's last checkpoint
  has none, and the search deletes it when a scheduler stops the trial.

The resume state of a ResNet50 (weights and two Adam moments) is about 270 MiB;
its deliverable 90 MiB (benchmarks/disk_usage.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
import torch

if TYPE_CHECKING:  # Ray's Checkpoint: a folder on any storage Ray writes to
    from ray.tune import Checkpoint

KEPT_FILE = "kept.pt"
RESUME_FILE = "resume.pt"


@dataclass(frozen=True)
class CheckpointPolicy:
    """When a trial hands Ray Tune a checkpoint.

    When Tune keeps one checkpoint per trial, every checkpoint forces a
    snapshot of the whole experiment's state, whose cost grows with the number
    of trials. Measured here: 400 no-op trials of 5 reports took 370 s with a
    checkpoint per report, 35 s when no snapshot was forced; 200 trials of our
    trainable ran 1.9x faster with this policy (benchmarks/checkpoint_overhead.py).
    So a trial writes a checkpoint only where it is needed:

    - after its last epoch (early stop or ``max_epochs``): the kept weights the
      analysis reloads;
    - after each epoch in ``epochs``: where a scheduler may stop it (ASHA's
      rungs), so that a stopped trial's checkpoint also holds its kept weights;
    - when ``period_s`` seconds of training have passed since the last one:
      the most work a crash can lose (0: every epoch).
    """

    epochs: frozenset[int] = frozenset()
    period_s: float = 0.0

    def due(self, epoch: int, *, last: bool, seconds_since_last: float) -> bool:
        """Whether the report after ``epoch`` carries a checkpoint."""
        return last or epoch in self.epochs or seconds_since_last >= self.period_s


EVERY_EPOCH = CheckpointPolicy()


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> frozenset[int]:
    """The epochs after which Ray Tune's ASHA (one bracket) compares a trial with its rung, up to ``max_t``."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)  # as ray.tune's _Bracket counts them
    return frozenset(math.ceil(grace_period * reduction_factor**k) for k in range(count))


def save_checkpoint(folder: str | Path, *, kept: dict[str, Any], resume: dict[str, Any] | None) -> Path:
    """Write a trial's deliverable and, while it can continue, its resume state into ``folder``."""
    folder = Path(folder)
    torch.save(kept, folder / KEPT_FILE)
    if resume is not None:
        torch.save(resume, folder / RESUME_FILE)
    return folder


def load_kept(folder: str | Path) -> dict[str, Any]:
    """The deliverable that :func:`save_checkpoint` wrote (FileNotFoundError once retention deleted it)."""
    return torch.load(Path(folder) / KEPT_FILE, map_location="cpu", weights_only=False)


def load_resume(folder: str | Path) -> dict[str, Any] | None:
    """The resume state and deliverable of a checkpoint, or None for a finished trial's (no resume state)."""
    path = Path(folder) / RESUME_FILE
    if not path.exists():
        return None
    return {**torch.load(path, map_location="cpu", weights_only=False), "kept": load_kept(folder)}


def delete_checkpoint_file(checkpoint: Checkpoint, name: str) -> bool:
    """Delete ``name`` from a checkpoint folder on any storage Ray writes to; False when it was not there."""
    try:
        checkpoint.filesystem.delete_file(f"{checkpoint.path.rstrip('/')}/{name}")
    except FileNotFoundError:
        return False
    return True


def has_checkpoint_file(checkpoint: Checkpoint | None, name: str) -> bool:
    """Whether a checkpoint folder still holds ``name``."""
    if checkpoint is None:
        return False
    info = checkpoint.filesystem.get_file_info(f"{checkpoint.path.rstrip('/')}/{name}")
    return info.type == pyarrow.fs.FileType.File
