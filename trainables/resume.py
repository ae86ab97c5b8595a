"""How a trial continues where it stopped: the state a checkpoint carries beside the deliverable, and its restore.

A checkpoint before a trial's last epoch holds, beside the deliverable, what
its models need to train on with the values they would have had: weights,
optimiser and schedule states, the stopping rule's counters, the batch
generators and the RNG states (trainables.checkpoints writes and reads it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainables.checkpoints import RESUME_FORMAT, fold_metrics, kept_weights
from trainables.folds import FoldRun
from trainables.scores import Scores
from trainables.stopping import COUNTERS


def resume_state(epoch: int, runs: list[FoldRun]) -> dict[str, Any]:
    """What continues a trial after ``epoch`` with the values it would have had (with its deliverable)."""
    return {
        "format": RESUME_FORMAT,
        "epoch": epoch,
        "folds": [{"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                   "lr_schedule": run.schedule.state_dict(),
                   "early_stopping": {name: getattr(run.stopper, name) for name in COUNTERS},
                   "generator": run.generator.get_state()} for run in runs],
        "torch_rng": torch.get_rng_state(),
        # Dropout on a GPU draws from the CUDA generator: without it a resumed GPU trial diverges.
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_runs(runs: list[FoldRun], state: dict[str, Any]) -> int:
    """Continue ``runs`` from a :func:`resume_state` with its deliverable (``state["kept"]``); the next epoch."""
    kept = state["kept"]
    weights, metrics = kept_weights(kept), fold_metrics(kept)
    scores, calibration = kept.get("fold_scores"), kept.get("calibration_scores")
    for i, (run, saved) in enumerate(zip(runs, state["folds"], strict=True)):
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        run.schedule.load_state_dict(saved["lr_schedule"])
        run.generator.set_state(saved["generator"])
        run.stopper.restore(saved["early_stopping"], weights[i], metrics[i],
                            Scores(*(np.asarray(part) for part in scores[i])) if scores else None)
        if calibration:
            run.calibration_scores = Scores(np.asarray(calibration[i][0]), np.asarray(calibration[i][1]))
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["epoch"] + 1
