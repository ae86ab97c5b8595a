"""One trial: fresh seeded models trained with early stopping, reported every epoch.

``run_trial`` is the training loop, free of Ray so that it can be tested and
reused (trainables.trainable wraps it for Ray Tune). Its models, one per
fold and seed, train in step (trainables.folds); each epoch reports their
summary, with a checkpoint where its :class:`CheckpointPolicy` says one is
needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from trainables.checkpoints import EVERY_EPOCH, RESUME_FORMAT, CheckpointPolicy
from trainables.config import TrialConfig
from trainables.dataset import Dataset
from trainables.device import peak_memory_mib, placement, reset_peak_memory
from trainables.folds import FoldRun, deliverable, kept_epoch, kept_summary, mean_and_se, start_fold
from trainables.metrics import guarded_objective, tiebroken_objective, worst_objective
from trainables.models import get_spec

# (metrics, checkpoint or None); a checkpoint is {"kept": deliverable, "resume": state or None}
Reporter = Callable[[dict[str, float], dict[str, Any] | None], None]


def image_size_for(architecture: str, *, override: int | None, source_default: int | None) -> int:
    """Pixels a trial's images have: ``override``, else the source's size, else the model's."""
    return override or source_default or get_spec(architecture).input_size


def run_trial(
    cfg: TrialConfig,
    dataset: Dataset,
    *,
    report: Reporter,
    imagenet_state: dict[str, torch.Tensor] | None = None,
    device: torch.device | None = None,
    resume_from: dict[str, Any] | None = None,
    started: float | None = None,
    checkpoints: CheckpointPolicy = EVERY_EPOCH,
) -> list[FoldRun]:
    """Train one configuration (one model per fold, in step); return the fold runs, models holding their kept weights.

    ``report(metrics, checkpoint)`` is called once per epoch with the metrics
    and, where ``checkpoints`` says so, ``{"kept": ..., "resume": ...}`` (see
    trainables.checkpoints; ``resume`` is None after the last epoch, and a
    resume state with its deliverable is what ``resume_from`` takes);
    elsewhere ``checkpoint`` is None. ``started`` is the trial's start
    (``time.perf_counter()``); the seconds from it to the first training step
    are reported as ``setup_s``. A loss or score that is not finite ends the
    trial as ``diverged``, with the worst objective.

    With ``cfg.folds`` = k > 1 the trial trains k models on the stratified
    folds of the train split (:meth:`Dataset.folds`), epoch by epoch together; each
    stops on its own patience. Every validation metric is reported as the
    mean over folds (the objective ranks that mean) with its standard error
    (``..._se``), and the kept models' pooled out-of-fold scores give the
    ``oof_`` metrics. The validation split stays out of the folds: the mean of
    the kept fold models (the model as delivered) is scored there, and its
    operating threshold is set on those scores (:func:`calibration_scores`).

    With ``cfg.seeds`` = N > 1 every fold (or the one split) trains N models,
    seeded ``cfg.seed``, ``cfg.seed + 1``, ...: the reported means and errors
    are over the N x k models, and the delivered model is their mean.
    """
    started = time.perf_counter() if started is None else started
    where = placement(cfg.architecture, dataset.image_size, device)
    reset_peak_memory(where.device)
    calibration = dataset.val if cfg.folds > 1 else None
    splits = dataset.folds(cfg.folds)
    runs = [start_fold(cfg, train, val, fold=i, replicate=r, where=where, imagenet_state=imagenet_state,
                       calibration=calibration)
            for r in range(cfg.seeds) for i, (train, val) in enumerate(splits)]
    first_epoch = 1
    if resume_from is not None:
        for i, run in enumerate(runs):
            run.restore(resume_from["folds"][i], resume_from["kept"], i)
        _set_rng_states(resume_from)
        first_epoch = resume_from["epoch"] + 1
    setup_s = time.perf_counter() - started  # data, models, optimisers ready: the first step comes next
    parameters = sum(p.numel() for p in runs[0].model.parameters())
    last_checkpoint = time.perf_counter()  # the clock of checkpoints.period_s starts with training

    for epoch in range(first_epoch, cfg.max_epochs + 1):
        training = [run for run in runs if not run.stopper.should_stop]
        if not training:
            break
        epoch_metrics = [run.epoch(epoch, where, cfg.target_recall) for run in training]
        diverged = any(m is None for m in epoch_metrics)
        kept = kept_summary(runs, target_recall=cfg.target_recall)
        objective = worst_objective(cfg.mode) if diverged else guarded_objective(
            kept, metric=cfg.metric, mode=cfg.mode, min_balanced_accuracy=cfg.min_balanced_accuracy)
        stopped = all(run.stopper.should_stop for run in runs)
        result = {
            "epoch": epoch,
            **({} if diverged else mean_and_se(epoch_metrics)),
            "kept_epoch": kept_epoch(runs),
            **{f"kept_{k}": v for k, v in kept.items()},
            "objective": objective,
            "tiebroken_objective": tiebroken_objective(objective, kept, mode=cfg.mode),
            "stopped_early": stopped,
            "diverged": diverged,
            "setup_s": setup_s,
            "parameters": parameters,  # of one model: what the cheapest-on-ties rule compares (search.comparison)
            **peak_memory_mib(where.device),
        }
        if len(runs) > 1:
            result["folds_training"] = len(training)
        last = diverged or stopped or epoch == cfg.max_epochs
        due = checkpoints.due(epoch, last=last, seconds_since_last=time.perf_counter() - last_checkpoint)
        if not due or any(run.stopper.best_state is None for run in runs):  # a model that diverged at once
            report(result, None)
        else:
            last_checkpoint = time.perf_counter()
            resume = None if last else _resume_state(epoch, runs)
            report(result, {"kept": deliverable(cfg, dataset, runs, kept), "resume": resume})
        if diverged:
            break

    for run in runs:
        if run.stopper.best_state is not None:
            run.model.load_state_dict(run.stopper.best_state)
    return runs


def _resume_state(epoch: int, runs: list[FoldRun]) -> dict[str, Any]:
    """What continues a trial after ``epoch`` with the values it would have had (with its deliverable)."""
    return {
        "format": RESUME_FORMAT,
        "epoch": epoch,
        "folds": [run.resume_state() for run in runs],
        "torch_rng": torch.get_rng_state(),
        # Dropout on a GPU draws from the CUDA generator: without it a resumed GPU trial diverges.
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
