"""One trial's configuration: defaults and validation in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from trainables.errors import InputError
from trainables.imbalance import check_strategy
from trainables.objective import METRIC_MODES
from trainables.models import get_spec
from trainables.optim import LR_SCHEDULES, OPTIMIZERS


AUTO = "auto"  # a flag value meaning: decided from the data (--folds) or the GPU (--gpus-per-trial)

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
    "lr_schedule": "constant",  # constant, or cosine decay to 0 over max_epochs (see trainables.optim.LR_SCHEDULES)
    "max_epochs": 20,  # epochs at most (ASHA's max_t)
    "seed": 0,  # seeds the model's initialisation, batch order and augmentation
    "pretrained": True,  # start ImageNet models from ImageNet weights
    "image_size": None,  # pixels; None = the data's size for this architecture
    # What the search ranks by (trainables.objective.METRIC_MODES): the delivered model's specificity at its
    # operating threshold. Recall at a 0.5 cut (the study's val_recall) rewards models still biased towards
    # the positive class, and falls as a model trains, which breaks ASHA's assumption.
    "metric": "val_specificity_at_recall",
    "target_recall": 0.9,  # recall of the operating point: val_*_at_recall and the delivered threshold
    "min_balanced_accuracy": 0.6,  # degenerate-model guard on the metric; 0 disables it
    "folds": 1,  # 1: train on train, judge on val; k > 1: k stratified folds of train, val calibrates (Dataset.folds)
    "seeds": 1,  # models per fold, seeded seed, seed + 1, ...: the objective is their mean (trainables.summary)
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
    folds: int
    seeds: int

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "TrialConfig":
        """Fill ``DEFAULTS`` in and check every key; InputError naming the first bad one."""
        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise InputError(f"unknown config key(s) {', '.join(unknown)}; known keys are {', '.join(DEFAULTS)}")
        c = {**DEFAULTS, **config}
        for key in DEFAULTS:
            check_value(key, c[key])
        return cls(**{f.name: c[f.name] for f in fields(cls)})

    @property
    def mode(self) -> str:
        return METRIC_MODES[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_value(key: str, value: Any, *, name: str | None = None) -> None:
    """Check one config value on its own; the InputError names it ``name`` (a flag, say), else ``key``.

    Every constraint of a config is on one key at a time (sizes that a model
    cannot take are checked apart, by ``trainables.check_input_size``), so a
    space is valid when each value of each dimension is.
    """
    if key not in _CHECKS:
        raise InputError(f"unknown config key {key!r}; known keys are {', '.join(DEFAULTS)}")
    _CHECKS[key](name or key, value)


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


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false; got {value!r}")


def _check_image_size(key: str, value: Any) -> None:
    if value is not None:  # None: the data's size for the architecture
        _check_int(key, value, 8)


def _check_architecture(key: str, value: Any) -> None:
    get_spec(value)


def _check_strategy(key: str, value: Any) -> None:
    check_strategy(value)


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "architecture": _check_architecture,
    "strategy": _check_strategy,
    "augment": _check_bool,
    "optimizer": lambda key, v: _check_choice(key, v, tuple(OPTIMIZERS)),
    "lr": lambda key, v: _check_number(key, v, low=0.0, low_open=True),
    "batch_size": lambda key, v: _check_int(key, v, 1),
    "patience": lambda key, v: _check_int(key, v, 1),
    "max_epochs": lambda key, v: _check_int(key, v, 1),
    "seed": lambda key, v: _check_int(key, v, 0),
    "pretrained": _check_bool,
    "image_size": _check_image_size,
    "metric": lambda key, v: _check_choice(key, v, tuple(METRIC_MODES)),
    "min_balanced_accuracy": lambda key, v: _check_number(key, v, low=0.0, high=1.0),
    "target_recall": lambda key, v: _check_number(key, v, low=0.0, high=1.0, low_open=True),
    "min_delta": lambda key, v: _check_number(key, v, low=0.0),
    "min_epochs": lambda key, v: _check_int(key, v, 1),
    "lr_schedule": lambda key, v: _check_choice(key, v, tuple(LR_SCHEDULES)),
    "folds": lambda key, v: _check_int(key, v, 1),
    "seeds": lambda key, v: _check_int(key, v, 1),
}
