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
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.checkpoints import (
    EVERY_EPOCH,
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
from trainables.optim import LR_SCHEDULES, OPTIMIZERS

EVAL_BATCH_SIZE = 256  # images per forward pass when evaluating; no effect on results
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
    epoch cannot end a trial; the kept weights are still the lowest-loss ones.
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

    def step(self, epoch: int, val_loss: float, model: nn.Module, metrics: dict[str, float]) -> bool:
        """Record one epoch; True when it is the new best (and its weights are kept)."""
        self.epoch = epoch
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_metrics = dict(metrics)
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience and self.epoch >= self.min_epochs

    def counters(self) -> dict[str, Any]:
        """What resumes the stopping rule; the kept weights and metrics travel in the deliverable."""
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "epoch": self.epoch}

    def restore(self, counters: dict[str, Any], kept: dict[str, Any]) -> None:
        """Continue from :meth:`counters` and a checkpoint's deliverable."""
        vars(self).update(counters)
        self.best_state, self.best_metrics = kept["weights"], dict(kept["metrics"])


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
) -> tuple[nn.Module, EarlyStopping]:
    """Train one configuration; return the model holding its kept (lowest val loss) weights.

    ``report(metrics, checkpoint)`` is called once per epoch with the metrics
    and, where ``checkpoints`` says so, ``{"kept": ..., "resume": ...}`` (see
    trainables.checkpoints; ``resume`` is None after the last epoch, and a
    resume state with its deliverable is what ``resume_from`` takes);
    elsewhere ``checkpoint`` is None. ``started`` is the trial's start
    (``time.perf_counter()``); the seconds from it to the first training step
    are reported as ``setup_s``. A loss or score that is not finite ends the
    trial as ``diverged``, with the worst objective.
    """
    started = time.perf_counter() if started is None else started
    where = placement(cfg.architecture, dataset.image_size, device)
    reset_peak_memory(where.device)
    torch.manual_seed(cfg.seed)  # model initialisation and dropout, on every device
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order, oversampling, augmentation
    model = create_model(
        cfg.architecture,
        in_channels=dataset.channels,
        image_size=dataset.image_size,
        imagenet_state=imagenet_state if cfg.pretrained else None,
        device=where.device,
    ).to(memory_format=where.memory_format)
    setup = create_strategy(cfg.strategy, dataset.train.labels)
    criterion = setup.criterion(where.device)
    train_loader = make_loader(dataset.train, cfg, batch_size=cfg.batch_size, where=where, generator=generator,
                               train=True, sample_weights=setup.sample_weights)
    val_loader = make_loader(dataset.val, cfg, batch_size=EVAL_BATCH_SIZE, where=where)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg.lr)
    schedule = LR_SCHEDULES[cfg.lr_schedule](optimizer, cfg.max_epochs)
    stopper = EarlyStopping(cfg.patience, min_delta=cfg.min_delta, min_epochs=cfg.min_epochs)
    first_epoch = 1
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        schedule.load_state_dict(resume_from["lr_schedule"])
        stopper.restore(resume_from["early_stopping"], resume_from["kept"])
        _set_rng_states(generator, resume_from)
        first_epoch = resume_from["epoch"] + 1
    setup_s = time.perf_counter() - started  # data, model, optimiser ready: the first step comes next
    last_checkpoint = time.perf_counter()  # the clock of checkpoints.period_s starts with training

    for epoch in range(first_epoch, cfg.max_epochs + 1):
        if stopper.should_stop:
            break
        train_loss = train_one_epoch(model, train_loader, criterion, optimizer, where)
        schedule.step()
        val_loss, scores = evaluate(model, val_loader, where)
        diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss) and np.isfinite(scores.y_score).all())
        if diverged:
            metrics = {"val_loss": val_loss}
        else:
            metrics = {"val_loss": val_loss, **classification_metrics(
                scores.y_true, scores.predictions(), scores.y_score, prefix="val_", target_recall=cfg.target_recall)}
            stopper.step(epoch, val_loss, model, metrics)
        objective = worst_objective(cfg.mode) if diverged else guarded_objective(
            stopper.best_metrics, metric=cfg.metric, mode=cfg.mode, min_balanced_accuracy=cfg.min_balanced_accuracy)
        result = {
            "epoch": epoch,
            "train_loss": train_loss,
            **metrics,
            "kept_epoch": stopper.best_epoch,
            **{f"kept_{k}": v for k, v in stopper.best_metrics.items()},
            "objective": objective,
            "tiebroken_objective": tiebroken_objective(objective, stopper.best_metrics, mode=cfg.mode),
            "stopped_early": stopper.should_stop,
            "diverged": diverged,
            "setup_s": setup_s,
            **peak_memory_mib(where.device),
        }
        last = diverged or stopper.should_stop or epoch == cfg.max_epochs
        due = checkpoints.due(epoch, last=last, seconds_since_last=time.perf_counter() - last_checkpoint)
        if not due or stopper.best_state is None:  # nothing kept yet: a model that diverged at once
            report(result, None)
        else:
            last_checkpoint = time.perf_counter()
            resume = None if last else _resume_state(epoch, model, optimizer, schedule, stopper, generator)
            report(result, {"kept": _deliverable(cfg, dataset, stopper), "resume": resume})
        if diverged:
            break

    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    return model, stopper


def _deliverable(cfg: TrialConfig, dataset: Dataset, stopper: EarlyStopping) -> dict[str, Any]:
    """What a trial delivers: its kept weights, with what it takes to rebuild and judge them."""
    return {
        "config": cfg.to_dict(),
        "data_channels": dataset.channels,
        "image_size": dataset.image_size,
        "epoch": stopper.best_epoch,
        "weights": stopper.best_state,
        "metrics": stopper.best_metrics,
    }


def _resume_state(epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                  schedule: torch.optim.lr_scheduler.LRScheduler, stopper: EarlyStopping,
                  generator: torch.Generator) -> dict[str, Any]:
    """What continues a trial after ``epoch`` with the values it would have had (with its deliverable)."""
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_schedule": schedule.state_dict(),
        "early_stopping": stopper.counters(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        # Dropout on a GPU draws from the CUDA generator: without it a resumed GPU trial diverges.
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_states(generator: torch.Generator, state: dict[str, Any]) -> None:
    generator.set_state(state["generator"])
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


def kept_model(kept: dict[str, Any], device: torch.device | None = None) -> tuple[nn.Module, TrialConfig]:
    """The model a trial delivered (its lowest-val-loss weights), in eval mode, and its config."""
    cfg = TrialConfig.from_dict(kept["config"])
    model = create_model(cfg.architecture, in_channels=kept["data_channels"], image_size=kept["image_size"],
                         device=device)
    model.load_state_dict(kept["weights"])
    return model.eval(), cfg


def score_split(model: nn.Module, cfg: TrialConfig, split: Split) -> Scores:
    """Positive-class probabilities of a trained model on one split."""
    where = placement(cfg.architecture, split.images.shape[-1], next(model.parameters()).device)
    return evaluate(model.to(memory_format=where.memory_format),
                    make_loader(split, cfg, batch_size=EVAL_BATCH_SIZE, where=where), where)[1]


def evaluate_split(model: nn.Module, cfg: TrialConfig, split: Split, *, prefix: str) -> dict[str, float]:
    """Classification metrics of a trained model on one split (argmax decision)."""
    scores = score_split(model, cfg, split)
    return classification_metrics(scores.y_true, scores.predictions(), scores.y_score, prefix=prefix)


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

    def report(metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        # training_iteration is the epoch: a trial restored from a checkpoint Tune had not recorded
        # continues at that checkpoint's epoch, where Tune's own count of reports would not be.
        metrics = {**metrics, "node_id": node_id, "training_iteration": metrics["epoch"]}
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, kept=state["kept"], resume=state["resume"], result=metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    point = _restore(tune.get_context().get_storage(), recorded=tune.get_checkpoint())
    if point is not None and point.ended:
        return  # a trial that had ended when the driver died, before Tune's last snapshot said so
    resume_from = point.resume if point is not None else None
    try:
        run_trial(cfg, datasets[size], report=report, imagenet_state=(imagenet_states or {}).get(cfg.architecture),
                  device=where.device, resume_from=resume_from, started=started, checkpoints=checkpoints)
    except torch.OutOfMemoryError:
        share = f"its share of the GPU ({cap_mib:.0f} MiB)" if cap_mib else "the GPU's memory"
        raise GpuMemoryError(f"{cfg.architecture} at {size} px, batch {cfg.batch_size} needs more than {share}; "
                             "raise --gpus-per-trial, or pass --gpus-per-trial auto") from None


def _restore(storage: Any, *, recorded: Any) -> RestorePoint | None:
    """Where the trial stands: its newest complete checkpoint, made the one Tune records; None for a fresh start.

    ``storage`` is Tune's StorageContext of the trial (its folder, the file
    system, the number of its next checkpoint folder) and ``recorded`` the
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

    fs, trial_path = storage.storage_filesystem, storage.trial_fs_path
    folders = checkpoint_folders(fs, trial_path)
    if not folders:
        return None
    # Tune numbers a trial's next folder after the last one it recorded; newer ones on disk would be
    # written over. Number on after the newest there is.
    storage.current_checkpoint_index = max(storage.current_checkpoint_index, folders[0][0])
    point = restore_point(fs, trial_path)
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
