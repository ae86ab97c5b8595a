"""One trial: a fresh seeded model trained with early stopping, reported every epoch.

``run_trial`` is the training loop, free of Ray so that it can be tested and
reused; ``train_fn`` is the Ray Tune function trainable around it, which
picks the trial's data out of the object store, restores a checkpoint when
Tune resumes the trial, and reports metrics every epoch, with a checkpoint
where its :class:`CheckpointPolicy` says one is needed.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.checkpoints import EVERY_EPOCH, CheckpointPolicy, load_state, save_state
from trainables.config import TrialConfig
from trainables.data import Dataset, Split
from trainables.imbalance import create_strategy
from trainables.loader import BatchLoader
from trainables.metrics import classification_metrics, guarded_objective, tiebroken_objective
from trainables.models import create_model, get_spec

EVAL_BATCH_SIZE = 256  # images per forward pass when evaluating; no effect on results
SGD_MOMENTUM = 0.9

OPTIMIZERS: dict[str, Callable[[Any, float], torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM),
}

Reporter = Callable[[dict[str, float], dict[str, Any] | None], None]  # (metrics, checkpoint state or None)


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without a lower validation loss; keep the best weights."""

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the kept weights
    best_metrics: dict[str, float] = field(default_factory=dict)

    def step(self, epoch: int, val_loss: float, model: nn.Module, metrics: dict[str, float]) -> bool:
        """Record one epoch; True when it is the new best (and its weights are kept)."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_metrics = dict(metrics)
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)


def image_size_for(architecture: str, *, override: int | None, source_default: int | None) -> int:
    """Pixels a trial's images have: ``override``, else the source's size, else the model's."""
    return override or source_default or get_spec(architecture).input_size


def data_device() -> torch.device:
    """The trial's device: the GPU Ray assigned it, if any."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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

    ``report(metrics, state)`` is called once per epoch with the metrics and,
    where ``checkpoints`` says so, everything needed to resume from that epoch
    (``resume_from``); elsewhere ``state`` is None. ``started``
    is the trial's start (``time.perf_counter()``); the seconds from it to the
    first training step are reported as ``setup_s``.
    """
    started = time.perf_counter() if started is None else started
    device = device or data_device()
    torch.manual_seed(cfg.seed)  # model initialisation and dropout
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order, oversampling, augmentation
    model = create_model(
        cfg.architecture,
        in_channels=dataset.channels,
        image_size=dataset.image_size,
        imagenet_state=imagenet_state if cfg.pretrained else None,
    ).to(device, memory_format=_memory_format(device))
    setup = create_strategy(cfg.strategy, dataset.train.labels)
    criterion = setup.criterion(device)
    train_loader = make_loader(dataset.train, cfg, batch_size=cfg.batch_size, device=device, generator=generator,
                               train=True, sample_weights=setup.sample_weights)
    val_loader = make_loader(dataset.val, cfg, batch_size=EVAL_BATCH_SIZE, device=device)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg.lr)
    amp = _amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    stopper = EarlyStopping(cfg.patience)
    first_epoch = 1
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        scaler.load_state_dict(resume_from["scaler"])
        stopper.load_state_dict(resume_from["early_stopping"])
        generator.set_state(resume_from["generator"])
        torch.set_rng_state(resume_from["torch_rng"])
        first_epoch = resume_from["epoch"] + 1
    setup_s = time.perf_counter() - started  # data, model, optimiser ready: the first step comes next
    last_checkpoint = time.perf_counter()  # the clock of checkpoints.period_s starts with training

    for epoch in range(first_epoch, cfg.max_epochs + 1):
        if stopper.should_stop:
            break
        train_loss = train_one_epoch(model, train_loader, criterion, optimizer, scaler, amp)
        val_loss, y_true, y_score = evaluate(model, val_loader, criterion, amp)
        metrics = {"val_loss": val_loss, **classification_metrics(y_true, y_score > 0.5, y_score, prefix="val_")}
        stopper.step(epoch, val_loss, model, metrics)
        kept = {f"kept_{k}": v for k, v in stopper.best_metrics.items()}
        objective = guarded_objective(stopper.best_metrics, metric=cfg.metric, mode=cfg.mode,
                                      min_balanced_accuracy=cfg.min_balanced_accuracy)
        result = {
            "epoch": epoch,
            "train_loss": train_loss,
            **metrics,
            "kept_epoch": stopper.best_epoch,
            **kept,
            "objective": objective,
            "tiebroken_objective": tiebroken_objective(objective, stopper.best_metrics, mode=cfg.mode),
            "stopped_early": stopper.should_stop,
            "setup_s": setup_s,
        }
        last = stopper.should_stop or epoch == cfg.max_epochs
        if not checkpoints.due(epoch, last=last, seconds_since_last=time.perf_counter() - last_checkpoint):
            report(result, None)
            continue
        last_checkpoint = time.perf_counter()
        state = {
            "epoch": epoch,
            "config": cfg.to_dict(),
            "data_channels": dataset.channels,
            "image_size": dataset.image_size,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "early_stopping": stopper.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        report(result, state)

    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    return model, stopper


def make_loader(
    split: Split,
    cfg: TrialConfig,
    *,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    train: bool = False,
    sample_weights: torch.Tensor | None = None,
) -> BatchLoader:
    """A loader of ``split`` shaped for ``cfg``'s model; augmentation and shuffling on training only."""
    spec = get_spec(cfg.architecture)
    images = _as_tensor(split.images).to(device)
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
        memory_format=_memory_format(device),
    )


def train_one_epoch(
    model: nn.Module,
    loader: BatchLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: torch.dtype | None,
) -> float:
    """One pass over the training loader; the mean loss per example."""
    model.train()
    total, count = torch.zeros((), device=loader.images.device), 0
    for x, y in loader:
        with _autocast(x.device, amp):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach() * len(y)
        count += len(y)
    return float(total) / max(count, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: BatchLoader, criterion: nn.Module, amp: torch.dtype | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean loss, true labels and positive-class probabilities over ``loader``."""
    model.eval()
    losses, labels, scores = [], [], []
    for x, y in loader:
        with _autocast(x.device, amp):
            logits = model(x)
        logits = logits.float()
        losses.append(criterion(logits, y) * len(y))
        labels.append(y)
        scores.append(logits.softmax(dim=1)[:, 1])
    y_true = torch.cat(labels).cpu().numpy()
    loss = float(torch.stack(losses).sum()) / max(len(y_true), 1)
    return loss, y_true, torch.cat(scores).cpu().numpy()


def kept_model(state: dict[str, Any]) -> tuple[nn.Module, TrialConfig]:
    """The model a checkpoint kept (its lowest-val-loss weights), in eval mode, and its config."""
    cfg = TrialConfig.from_dict(state["config"])
    model = create_model(cfg.architecture, in_channels=state["data_channels"], image_size=state["image_size"])
    model.load_state_dict(state["early_stopping"]["best_state"])
    return model.eval(), cfg


def evaluate_split(model: nn.Module, cfg: TrialConfig, split: Split, *, prefix: str) -> dict[str, float]:
    """Classification metrics of a trained model on one split."""
    device = next(model.parameters()).device
    loader = make_loader(split, cfg, batch_size=EVAL_BATCH_SIZE, device=device)
    loss, y_true, y_score = evaluate(model, loader, nn.CrossEntropyLoss())
    return {f"{prefix}loss": loss, **classification_metrics(y_true, y_score > 0.5, y_score, prefix=prefix)}


def train_fn(config: dict[str, Any], *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict] | None = None,
             image_size: int | None = None, checkpoints: CheckpointPolicy = EVERY_EPOCH) -> None:
    """Ray Tune function trainable: one trial of ``config``.

    Wrap it with ``tune.with_parameters`` so that ``datasets`` (image size ->
    :class:`Dataset`) and ``imagenet_states`` (architecture -> state dict) go
    through the object store once, not into every trial's closure. The default
    ``checkpoints`` policy (every epoch) is right under any scheduler; a search
    that knows where its scheduler stops trials passes a leaner one.
    """
    import ray
    from ray import tune

    started = time.perf_counter()
    cfg = TrialConfig.from_dict(config)
    size = image_size_for(cfg.architecture, override=cfg.image_size, source_default=image_size)
    _match_threads_to_cpus()
    node_id = ray.get_runtime_context().get_node_id()  # which node of a cluster ran the trial
    resume_from = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_from = load_state(folder)

    def report(metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        metrics = {**metrics, "node_id": node_id}
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_state(state, folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    run_trial(cfg, datasets[size], report=report, imagenet_state=(imagenet_states or {}).get(cfg.architecture),
              resume_from=resume_from, started=started, checkpoints=checkpoints)


def _match_threads_to_cpus() -> None:
    """One torch thread per CPU Ray gave this trial, so concurrent trials do not oversubscribe."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays from Ray's object store are read-only views of shared memory; torch
    # warns about that, but the tensors are never written to.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def _memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on GPUs, where convolutions run faster in NHWC under mixed precision."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on GPUs: bfloat16 where supported, else float16 (with loss scaling)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
