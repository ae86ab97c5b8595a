"""One trial: a fresh seeded model trained with early stopping, reported every epoch.

``run_trial`` is the training loop, free of Ray so that it can be tested and
reused; ``train_fn`` is the Ray Tune function trainable around it, which
picks the trial's data out of the object store, continues from the trial's
newest complete checkpoint when it has one (trainables.checkpoints), and
reports metrics every epoch, with a checkpoint where its
:class:`CheckpointPolicy` says one is needed.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.checkpoints import (
    EVERY_EPOCH,
    RESUME_FORMAT,
    CheckpointPolicy,
    RestorePoint,
    checkpoint_folders,
    delete_folder,
    restore_point,
    save_checkpoint,
)
from trainables.config import TrialConfig
from trainables.data import Dataset, Split
from trainables.device import (
    GpuMemoryError,
    Placement,
    cap_gpu_memory,
    peak_memory_mib,
    placement,
    reset_peak_memory,
)
from trainables.imbalance import create_strategy
from trainables.loader import BatchLoader
from trainables.metrics import classification_metrics, guarded_objective, tiebroken_objective, worst_objective
from trainables.models import create_model, get_spec
from trainables.operating import set_operating_point
from trainables.ray_compat import TrialStorage, trial_storage
from trainables.optim import LR_SCHEDULES, OPTIMIZERS

EVAL_BATCH_SIZE = 256  # images per forward pass when evaluating; no effect on results
FOLD_SEED_STRIDE = 1_000_003  # fold i's models draw from seed + i * this: distinct streams, fold 0 the trial's own
# Seed replicate r (--seeds) draws from seed + r, with the same folds: its own weights, batch order and augmentation.
# (metrics, checkpoint or None); a checkpoint is {"kept": deliverable, "resume": state or None}
Reporter = Callable[[dict[str, float], dict[str, Any] | None], None]


@dataclass(frozen=True)
class Scores:
    """True labels and positive-class probabilities of one split."""

    y_true: np.ndarray
    y_score: np.ndarray

    def predictions(self, threshold: float | None = None) -> np.ndarray:
        """Hard labels: argmax (probability > 0.5) by default, else ``score >= threshold``."""
        if threshold is None:
            return (self.y_score > 0.5).astype(int)
        return (self.y_score >= threshold).astype(int)


def average_scores(members: list[Scores]) -> Scores:
    """The mean positive-class probability of several models on the same split: an ensemble's scores."""
    if any(not np.array_equal(m.y_true, members[0].y_true) for m in members):
        raise ValueError("ensemble members were scored on different images")
    return Scores(members[0].y_true, np.mean([m.y_score for m in members], axis=0))


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without a validation loss lower by ``min_delta``; keep the best weights.

    It never stops before ``min_epochs``, so that one lucky or unlucky early
    epoch cannot end a trial; the kept weights are still the lowest-loss ones,
    and ``best_scores`` their validation scores.
    """

    patience: int
    min_delta: float = 0.0
    min_epochs: int = 1
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the kept weights
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_scores: Scores | None = None

    def step(self, epoch: int, val_loss: float, model: nn.Module, metrics: dict[str, float],
             scores: Scores | None = None) -> bool:
        """Record one epoch; True when it is the new best (and its weights are kept)."""
        self.epoch = epoch
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_metrics, self.best_scores = dict(metrics), scores
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience and self.epoch >= self.min_epochs

    def counters(self) -> dict[str, Any]:
        """What resumes the stopping rule; the kept weights, metrics and scores travel in the deliverable."""
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "epoch": self.epoch}

    def restore(self, counters: dict[str, Any], weights: dict[str, torch.Tensor], metrics: dict[str, float],
                scores: Scores | None) -> None:
        """Continue from :meth:`counters` and one fold's part of a checkpoint's deliverable."""
        vars(self).update(counters)
        self.best_state, self.best_metrics, self.best_scores = weights, dict(metrics), scores


@dataclass
class FoldRun:
    """One model of a trial, trained on one fold's training images and judged on its validation images.

    A trial without folds has one per seed, on the data's train and val
    splits; with folds, one per fold and seed (``fold``, ``replicate``).
    """

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping
    generator: torch.Generator  # batch order, oversampling, augmentation
    train_loader: BatchLoader
    val_loader: BatchLoader
    # With folds: the validation split, which this fold's model neither trains nor stops on; its scores there at
    # the kept epoch, averaged over the folds, are the fold ensemble's scores that set its operating threshold.
    calibration_loader: BatchLoader | None = None
    calibration_scores: Scores | None = None
    fold: int = 0
    replicate: int = 0  # which of the trial's seeds: cfg.seed + replicate

    def epoch(self, epoch: int, where: Placement, target_recall: float) -> dict[str, float] | None:
        """Train one epoch and judge it; its validation metrics, or None when a loss or score is not finite."""
        train_loss = train_one_epoch(self.model, self.train_loader, self.criterion, self.optimizer, where)
        self.schedule.step()
        val_loss, scores = evaluate(self.model, self.val_loader, where)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss) and np.isfinite(scores.y_score).all()):
            return None
        metrics = {"val_loss": val_loss, **classification_metrics(
            scores.y_true, scores.predictions(), scores.y_score, prefix="val_", target_recall=target_recall)}
        if self.stopper.step(epoch, val_loss, self.model, metrics, scores) and self.calibration_loader is not None:
            self.calibration_scores = evaluate(self.model, self.calibration_loader, where)[1]
        return {"train_loss": train_loss, **metrics}

    def resume_state(self) -> dict[str, Any]:
        """What continues this fold's training with the values it would have had."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.schedule.state_dict(), "early_stopping": self.stopper.counters(),
                "generator": self.generator.get_state()}

    def restore(self, state: dict[str, Any], kept: dict[str, Any], fold: int) -> None:
        """Continue from :meth:`resume_state` and fold ``fold``'s part of the deliverable ``kept``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["lr_schedule"])
        self.generator.set_state(state["generator"])
        scores, calibration = kept.get("fold_scores"), kept.get("calibration_scores")
        self.stopper.restore(state["early_stopping"], kept_weights(kept)[fold], fold_metrics(kept)[fold],
                             Scores(*(np.asarray(part) for part in scores[fold])) if scores else None)
        if calibration:
            self.calibration_scores = Scores(np.asarray(calibration[fold][0]), np.asarray(calibration[fold][1]))


def fold_seed(seed: int, fold: int, replicate: int = 0) -> int:
    """The seed of one model and its batches: the trial's own for the first (or only) fold of its first seed."""
    return seed + replicate + FOLD_SEED_STRIDE * fold


def start_fold(cfg: TrialConfig, train: Split, val: Split, *, fold: int, where: Placement,
               imagenet_state: dict[str, torch.Tensor] | None, calibration: Split | None = None,
               replicate: int = 0) -> FoldRun:
    """A fresh seeded model, optimiser, schedule and loaders for one fold and seed (``calibration``: with folds, val)."""
    seed = fold_seed(cfg.seed, fold, replicate)
    torch.manual_seed(seed)  # model initialisation and dropout, on every device
    generator = torch.Generator().manual_seed(seed)
    model = create_model(
        cfg.architecture,
        in_channels=int(train.images.shape[1]),
        image_size=int(train.images.shape[-1]),
        imagenet_state=imagenet_state if cfg.pretrained else None,
        device=where.device,
    ).to(memory_format=where.memory_format)
    setup = create_strategy(cfg.strategy, train.labels)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg.lr)
    return FoldRun(
        model=model,
        criterion=setup.criterion(where.device),
        optimizer=optimizer,
        schedule=LR_SCHEDULES[cfg.lr_schedule](optimizer, cfg.max_epochs),
        stopper=EarlyStopping(cfg.patience, min_delta=cfg.min_delta, min_epochs=cfg.min_epochs),
        generator=generator,
        train_loader=make_loader(train, cfg, batch_size=cfg.batch_size, where=where, generator=generator,
                                 train=True, sample_weights=setup.sample_weights),
        val_loader=make_loader(val, cfg, batch_size=EVAL_BATCH_SIZE, where=where),
        calibration_loader=None if calibration is None else make_loader(calibration, cfg, batch_size=EVAL_BATCH_SIZE,
                                                                        where=where),
        fold=fold,
        replicate=replicate,
    )


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
            report(result, {"kept": _deliverable(cfg, dataset, runs, kept), "resume": resume})
        if diverged:
            break

    for run in runs:
        if run.stopper.best_state is not None:
            run.model.load_state_dict(run.stopper.best_state)
    return runs


def kept_epoch(runs: list[FoldRun]) -> float:
    """The epoch whose weights a trial keeps: its model's, or the mean over its fold models."""
    epochs = [run.stopper.best_epoch for run in runs]
    return epochs[0] if len(epochs) == 1 else float(np.mean(epochs))


def mean_and_se(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over folds and, with more than one fold, its standard error as ``<metric>_se``.

    A metric that is NaN in a fold (AUC of a fold without positives) is
    averaged over the folds that have it.
    """
    if len(per_fold) == 1:
        return dict(per_fold[0])
    summary = {}
    for key in per_fold[0]:
        values = np.array([m[key] for m in per_fold], dtype=float)
        values = values[~np.isnan(values)]
        summary[key] = float(values.mean()) if len(values) else math.nan
        summary[f"{key}_se"] = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return summary


def held_out_scores(runs: list[FoldRun]) -> list[Scores] | None:
    """Each model's scores on its own held-out images (its fold's, else val) at its kept epoch; None before one."""
    if any(run.stopper.best_scores is None for run in runs):
        return None
    return [run.stopper.best_scores for run in runs]


def has_folds(runs: list[FoldRun]) -> bool:
    """Whether the trial's models were trained on folds of the train split (else all on train, judged on val)."""
    return any(run.fold > 0 for run in runs)


def ensemble_name(folds: int, seeds: int) -> str:
    """What a trial's delivered model is the mean of, in words: ``5 fold models``, ``2 seeds x 5 folds``."""
    if seeds == 1:
        return f"{folds} fold models" if folds > 1 else "one model"
    return f"{seeds} seeds x {folds} folds" if folds > 1 else f"{seeds} seeds"


def pool_scores(parts: list[Scores]) -> Scores:
    """Scores of disjoint sets of images as one set: the folds' held-out scores pooled cover the train split once."""
    return Scores(np.concatenate([part.y_true for part in parts]), np.concatenate([part.y_score for part in parts]))


def kept_summary(runs: list[FoldRun], *, target_recall: float) -> dict[str, float]:
    """The kept state's validation metrics: fold means and errors, and with folds the out-of-fold ``oof_`` metrics."""
    if any(not run.stopper.best_metrics for run in runs):
        return {}
    summary = mean_and_se([run.stopper.best_metrics for run in runs])
    parts = held_out_scores(runs)
    if parts is not None and has_folds(runs):
        oof = pool_scores(parts)
        summary.update(classification_metrics(oof.y_true, oof.predictions(), oof.y_score, prefix="oof_",
                                              target_recall=target_recall))
    return summary


def calibration_scores(runs: list[FoldRun]) -> tuple[Scores, str] | None:
    """The scores a trial's operating threshold is set on, and their name.

    With folds, the fold ensemble's (the mean of the kept fold models') on the
    validation split, which none of them trained or stopped on: the model as
    delivered, on images like new ones. Without, the model's validation
    scores (with seeds, the mean of its seeds' models there).
    """
    folded = has_folds(runs)
    parts = [run.calibration_scores if folded else run.stopper.best_scores for run in runs]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0], "validation"
    folds = len({run.fold for run in runs})
    # Read as "set on the mean of its 5 fold models' validation scores" (OperatingPoint.describe).
    return average_scores(parts), f"the mean of its {ensemble_name(folds, len(runs) // folds)}' validation"


def _deliverable(cfg: TrialConfig, dataset: Dataset, runs: list[FoldRun], kept: dict[str, float]) -> dict[str, Any]:
    """What a trial delivers: its kept weights (one set per fold), with what it takes to rebuild and judge them.

    ``kept`` is :func:`kept_summary` of ``runs``, as the epoch reported it;
    the operating point is set once, here (trainables.operating), on
    :func:`calibration_scores`.
    """
    parts = held_out_scores(runs)
    calibration = calibration_scores(runs)
    point = None if calibration is None else set_operating_point(
        calibration[0].y_true, calibration[0].y_score, target_recall=cfg.target_recall, scores=calibration[1])
    return {
        "config": cfg.to_dict(),
        "data_channels": dataset.channels,
        "image_size": dataset.image_size,
        "epoch": kept_epoch(runs),
        "weights": [run.stopper.best_state for run in runs],
        "metrics": kept,
        "operating_point": None if point is None else point.to_json(),
        "fold_metrics": [run.stopper.best_metrics for run in runs],
        # Held-out scores: each model's, on its own held-out images (its fold's, else val) at its kept epoch.
        # As tensors, which torch.load(weights_only=True) reads back; numpy arrays would need unpickling.
        "fold_scores": None if parts is None else [(torch.from_numpy(part.y_true), torch.from_numpy(part.y_score))
                                                   for part in parts],
        "units": [(run.replicate, run.fold) for run in runs],  # each model's seed (cfg.seed + it) and fold
        # With folds: each fold model's scores on the validation split at its kept epoch (calibration_scores).
        "calibration_scores": None if not has_folds(runs) or any(run.calibration_scores is None for run in runs) else [
            (torch.from_numpy(run.calibration_scores.y_true), torch.from_numpy(run.calibration_scores.y_score))
            for run in runs],
    }


def kept_weights(kept: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The state dicts of a deliverable's models, one per fold (a single dict in checkpoints before folds)."""
    weights = kept["weights"]
    return weights if isinstance(weights, list) else [weights]


def fold_metrics(kept: dict[str, Any]) -> list[dict[str, float]]:
    """A deliverable's kept validation metrics, per fold."""
    return kept.get("fold_metrics") or [kept["metrics"]]


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


def train_fn(config: dict[str, Any], *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict] | None = None,
             image_size: int | None = None, checkpoints: CheckpointPolicy = EVERY_EPOCH) -> None:
    """Ray Tune function trainable: one trial of ``config``.

    Wrap it with ``tune.with_parameters`` so that ``datasets`` (image size ->
    :class:`Dataset`) and ``imagenet_states`` (architecture -> state dict) go
    through the object store once, not into every trial's closure. The default
    ``checkpoints`` policy (every epoch) is right under any scheduler; a search
    that knows where its scheduler stops trials passes a leaner one. A trial
    given a fraction of a GPU caps its memory to that fraction.
    """
    import ray
    from ray import tune

    started = time.perf_counter()
    cfg = TrialConfig.from_dict(config)
    size = image_size_for(cfg.architecture, override=cfg.image_size, source_default=image_size)
    resources = ray.get_runtime_context().get_assigned_resources()
    _match_threads_to_cpus(resources.get("CPU"))
    where = placement(cfg.architecture, size)
    cap_mib = cap_gpu_memory(resources.get("GPU", 0.0), where.device)
    node_id = ray.get_runtime_context().get_node_id()  # which node of a cluster ran the trial

    point = _restore(trial_storage(), recorded=tune.get_checkpoint())
    if point is not None and point.ended:
        return  # a trial that had ended when the driver died, before Tune's last snapshot said so
    resume_from = point.resume if point is not None else None
    history = list(point.history) if point is not None else []  # every row so far, carried by each checkpoint

    def report(metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        # training_iteration is the epoch: a trial restored from a checkpoint Tune had not recorded
        # continues at that checkpoint's epoch, where Tune's own count of reports would not be.
        metrics = {**metrics, "node_id": node_id, "training_iteration": metrics["epoch"]}
        history.append(metrics)
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, kept=state["kept"], resume=state["resume"], result=metrics, history=history)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    try:
        run_trial(cfg, datasets[size], report=report, imagenet_state=(imagenet_states or {}).get(cfg.architecture),
                  device=where.device, resume_from=resume_from, started=started, checkpoints=checkpoints)
    except torch.OutOfMemoryError:
        share = f"its share of the GPU ({cap_mib:.0f} MiB)" if cap_mib else "the GPU's memory"
        raise GpuMemoryError(f"{cfg.architecture} at {size} px, batch {cfg.batch_size} needs more than {share}; "
                             "raise --gpus-per-trial, or pass --gpus-per-trial auto") from None


def _restore(storage: TrialStorage, *, recorded: Any) -> RestorePoint | None:
    """Where the trial stands: its newest complete checkpoint, made the one Tune records; None for a fresh start.

    ``storage`` is the trial's storage (trainables.ray_compat: its folder,
    the file system, the number of its next checkpoint folder) and ``recorded`` the
    checkpoint Tune names for the trial. Tune snapshots the experiment every
    so often, so after a crash it may name an older checkpoint than the
    trial's newest, one the search has deleted since (recreated empty by
    search.retention.recreate_named_folders, as Tune insists on it), or none;
    a folder may also have been cut short by the crash. The newest complete
    folder wins; the others go, but for the one Tune names. When Tune did not
    name it, its result is reported again with a copy of it, so that Tune
    records where the trial stands (and, for a trial that had ended, its final
    result), and it goes too.
    """
    from ray import tune

    fs, trial_path = storage.filesystem, storage.trial_path
    folders = checkpoint_folders(fs, trial_path)
    if not folders:
        return None
    # Tune numbers a trial's next folder after the last one it recorded; newer ones on disk would be
    # written over. Number on after the newest there is.
    storage.number_after(folders[0][0])
    point = restore_point(fs, trial_path)
    if point is None:  # the trial's own folders, and what the search's logs forward to the console
        print(f"{Path(trial_path).name}: none of its {len(folders)} checkpoint folder(s) can be continued (cut short, "
              "or written by an older version of this project); it starts again from epoch 1", flush=True)
    named = recorded.path.rstrip("/") if recorded is not None else None
    for _, path in folders:
        # Superseded, or cut short by the crash. The folder Tune names stays until Tune names
        # another (search.retention deletes it then): should this worker die first, Tune's
        # retry restores from it and fails if it is gone.
        if path != named and (point is None or path != point.path):
            delete_folder(fs, path)
    if point is None or point.path == named:
        return point
    with tune.Checkpoint(point.path, filesystem=fs).as_directory() as folder:
        tune.report(point.result, checkpoint=tune.Checkpoint.from_directory(folder))
    delete_folder(fs, point.path)  # Tune has its copy now
    return point


def _match_threads_to_cpus(cpus: float | None) -> None:
    """One torch thread per CPU Ray gave this trial, so concurrent trials do not oversubscribe."""
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays from Ray's object store are read-only views of shared memory; torch
    # warns about that, but the tensors are never written to.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
