"""One trial: fresh seeded models trained with early stopping, reported every epoch.

``run_trial`` is the training loop, free of Ray so that it can be tested and
reused (trainables.trainable wraps it for Ray Tune). Its models, one per
fold and seed, train in step (trainables.folds); each epoch reports their
summary (trainables.summary), with a checkpoint where its
:class:`CheckpointPolicy` says one is needed (trainables.resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from trainables.checkpoints import EVERY_EPOCH, CheckpointPolicy
from trainables.config import TrialConfig
from trainables.dataset import Dataset
from trainables.device import cap_gpu_memory, out_of_memory_in_one_line, peak_memory_mib, placement, reset_peak_memory
from trainables.folds import FoldRun, start_fold
from trainables.models import ModelSpec
from trainables.objective import guarded_objective, tiebroken_objective, worst_objective
from trainables.resume import restore_runs, resume_state
from trainables.summary import deliverable, summarise

# (metrics, checkpoint or None); a checkpoint is {"kept": deliverable, "resume": state or None}
Reporter = Callable[[dict[str, float], dict[str, Any] | None], None]


def run_trial(
    cfg: TrialConfig,
    dataset: Dataset,
    *,
    spec: ModelSpec,
    report: Reporter,
    imagenet_state: dict[str, torch.Tensor] | None = None,
    device: torch.device | None = None,
    gpu_share: float = 0.0,
    resume_from: dict[str, Any] | None = None,
    started: float | None = None,
    checkpoints: CheckpointPolicy = EVERY_EPOCH,
) -> list[FoldRun]:
    """Train one configuration of ``spec`` (one model per fold, in step); return the fold runs, holding their kept weights.

    ``report(metrics, checkpoint)`` is called once per epoch with the metrics
    and, where ``checkpoints`` says so, ``{"kept": ..., "resume": ...}`` (see
    trainables.checkpoints; ``resume`` is None after the last epoch, and a
    resume state with its deliverable is what ``resume_from`` takes);
    elsewhere ``checkpoint`` is None. ``started`` is the trial's start
    (``time.perf_counter()``); the seconds from it to the first training step
    are reported as ``setup_s``. A loss or score that is not finite ends the
    trial as ``diverged``, with the worst objective. On a GPU shared with
    others, ``gpu_share`` (its fraction) caps the trial's memory.

    With ``cfg.folds`` = k > 1 the trial trains k models on the stratified
    folds of the train split (:meth:`Dataset.folds`), epoch by epoch together; each
    stops on its own patience. Every validation metric is reported as the
    mean over folds (the objective ranks that mean) with its standard error
    (``..._se``), and the kept models' pooled out-of-fold scores give the
    ``oof_`` metrics. The validation split stays out of the folds: the mean of
    the kept fold models (the model as delivered) is scored there, and its
    operating threshold is set on those scores (trainables.summary).

    With ``cfg.seeds`` = N > 1 every fold (or the one split) trains N models,
    seeded ``cfg.seed``, ``cfg.seed + 1``, ...: the reported means and errors
    are over the N x k models, and the delivered model is their mean.
    """
    started = time.perf_counter() if started is None else started
    where = placement(spec, dataset.image_size, device)
    cap_mib = cap_gpu_memory(gpu_share, where.device)
    reset_peak_memory(where.device)
    with out_of_memory_in_one_line(f"{spec.name} at {dataset.image_size} px, batch {cfg.batch_size}", cap_mib):
        calibration = dataset.val if cfg.folds > 1 else None
        splits = dataset.folds(cfg.folds)
        runs = [start_fold(cfg, spec, train, val, fold=i, replicate=r, where=where, imagenet_state=imagenet_state,
                           calibration=calibration)
                for r in range(cfg.seeds) for i, (train, val) in enumerate(splits)]
        first_epoch = 1 if resume_from is None else restore_runs(runs, resume_from)
        setup_s = time.perf_counter() - started  # data, models, optimisers ready: the first step comes next
        parameters = sum(p.numel() for p in runs[0].model.parameters())
        last_checkpoint = time.perf_counter()  # the clock of checkpoints.period_s starts with training

        for epoch in range(first_epoch, cfg.max_epochs + 1):
            training = [run for run in runs if not run.stopper.should_stop]
            if not training:
                break
            epoch_metrics = [run.epoch(epoch, where, cfg.target_recall) for run in training]
            diverged = any(m is None for m in epoch_metrics)
            summary = summarise(runs, None if diverged else epoch_metrics, target_recall=cfg.target_recall)
            objective = worst_objective(cfg.mode) if diverged else guarded_objective(
                summary.kept, metric=cfg.metric, mode=cfg.mode, min_balanced_accuracy=cfg.min_balanced_accuracy)
            tiebroken = tiebroken_objective(objective, summary.kept, mode=cfg.mode)
            stopped = all(run.stopper.should_stop for run in runs)
            result = {
                "epoch": epoch,
                **summary.epoch,
                "kept_epoch": summary.kept_epoch,
                **{f"kept_{k}": v for k, v in summary.kept.items()},
                "objective": objective,
                "tiebroken_objective": tiebroken,
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
                resume = None if last else resume_state(epoch, runs)
                report(result, {"kept": deliverable(cfg, dataset, runs, summary), "resume": resume})
            if diverged:
                break

    for run in runs:
        if run.stopper.best_state is not None:
            run.model.load_state_dict(run.stopper.best_state)
    return runs
