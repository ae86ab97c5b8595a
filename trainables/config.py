"""One trial's configuration: defaults and validation in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from trainables.errors import InputError
from trainables.imbalance import check_strategy
from trainables.metrics import METRIC_MODES
from trainables.models import get_spec

OPTIMIZERS = ("adam", "sgd")  # sgd uses momentum 0.9, as in the study
LR_SCHEDULE_NAMES = ("constant", "cosine")

DEFAULTS: dict[str, Any] = {
    "architecture": "cnn",
    "strategy": "none",  # imbalance strategy, see trainables.imbalance
    "augment": False,  # flip + brightness/contrast jitter on training batches
    "optimizer": "adam",
    "lr": 1e-3,  # learning rate
    "batch_size": 64,  # images per step
    "patience": 5,  # epochs without a lower val loss before stopping
    "min_delta": 0.0,  # a val loss must fall by more than this to count as lower
    "min_epochs": 1,  # early stopping waits at least this many epochs
    "lr_schedule": "constant",  # constant, or cosine decay to 0 over max_epochs (see trainables.train.LR_SCHEDULES)
    "max_epochs": 20,  # epochs at most (ASHA's max_t)
    "seed": 0,  # seeds the model's initialisation, batch order and augmentation
    "pretrained": True,  # start ImageNet models from ImageNet weights
    "image_size": None,  # pixels; None = the data's size for this architecture
    "metric": "val_recall",  # what the search ranks by (see trainables.metrics.METRIC_MODES)
    "target_recall": 0.9,  # recall of the operating point: val_*_at_recall and the delivered threshold
    "min_balanced_accuracy": 0.6,  # degenerate-model guard on the metric; 0 disables it
}


@dataclass(frozen=True)
class TrialConfig:
    """A validated trial configuration; build it with :meth:`from_dict`."""

    architecture: str
    strategy: str
    augment: bool
    optimizer: str
    lr: float
    batch_size: int
    patience: int
    min_delta: float
    min_epochs: int
    lr_schedule: str
    max_epochs: int
    seed: int
    pretrained: bool
    image_size: int | None
    metric: str
    target_recall: float
    min_balanced_accuracy: float

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "TrialConfig":
        """Fill ``DEFAULTS`` in and check every key; InputError naming the first bad one."""
        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise InputError(f"unknown config key(s) {', '.join(unknown)}; known keys are {', '.join(DEFAULTS)}")
        c = {**DEFAULTS, **config}
        get_spec(c["architecture"])
        check_strategy(c["strategy"])
        _check_choice("optimizer", c["optimizer"], OPTIMIZERS)
        _check_choice("metric", c["metric"], tuple(METRIC_MODES))
        for key in ("augment", "pretrained"):
            if not isinstance(c[key], bool):
                raise InputError(f"{key} must be true or false; got {c[key]!r}")
        _check_choice("lr_schedule", c["lr_schedule"], LR_SCHEDULE_NAMES)
        for key, low in (("batch_size", 1), ("patience", 1), ("min_epochs", 1), ("max_epochs", 1), ("seed", 0)):
            _check_int(key, c[key], low)
        if c["image_size"] is not None:
            _check_int("image_size", c["image_size"], 8)
        _check_number("lr", c["lr"], low=0.0, low_open=True)
        _check_number("min_balanced_accuracy", c["min_balanced_accuracy"], low=0.0, high=1.0)
        _check_number("target_recall", c["target_recall"], low=0.0, high=1.0, low_open=True)
        _check_number("min_delta", c["min_delta"], low=0.0)
        return cls(**{f.name: c[f.name] for f in fields(cls)})

    @property
    def mode(self) -> str:
        return METRIC_MODES[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _check_int(key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{key} must be an integer >= {low}; got {value!r}")


def _check_number(key: str, value: Any, *, low: float, high: float | None = None, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise InputError(f"{key} must be a number {bounds}; got {value!r}")
