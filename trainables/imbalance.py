"""Imbalance strategies: what the loss weighs and how training examples are drawn.

Each strategy is a registered function of the training labels that returns
an :class:`ImbalanceSetup`. ``none`` is the control; ``weighted_loss`` weighs
each class by ``n / (2 * count)`` (scikit-learn's "balanced" weights, so the
minority's errors cost more); ``oversampling`` draws every example with
probability proportional to ``1 / count`` of its class, so each epoch shows as
many minority as majority images on average; ``both`` balances the classes
half by drawing and half by weighing (see :func:`weighted_loss_and_oversampling`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from trainables.errors import InputError


@dataclass(frozen=True)
class ImbalanceSetup:
    """Class weights for the loss and per-example sampling weights, each optional."""

    class_weights: torch.Tensor | None = None  # (2,), float32
    sample_weights: torch.Tensor | None = None  # (n_train,), float64

    def criterion(self, device: torch.device | str = "cpu") -> nn.CrossEntropyLoss:
        """The training loss, weighted when the strategy says so."""
        weight = None if self.class_weights is None else self.class_weights.to(device)
        return nn.CrossEntropyLoss(weight=weight)


_STRATEGIES: dict[str, Callable[[np.ndarray], ImbalanceSetup]] = {}


def register_strategy(name: str) -> Callable:
    """Decorator that registers ``fn(train_labels) -> ImbalanceSetup`` under ``name``."""

    def wrap(fn: Callable[[np.ndarray], ImbalanceSetup]) -> Callable[[np.ndarray], ImbalanceSetup]:
        _STRATEGIES[name] = fn
        return fn

    return wrap


def list_strategies() -> list[str]:
    """Names of the registered strategies."""
    return list(_STRATEGIES)


def check_strategy(name: str) -> str:
    """``name`` if it is registered; InputError listing the choices otherwise."""
    if name not in _STRATEGIES:
        close = difflib.get_close_matches(str(name), _STRATEGIES, n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown imbalance strategy {name!r}; choose from {', '.join(_STRATEGIES)}{hint}")
    return name


def create_strategy(name: str, train_labels: np.ndarray) -> ImbalanceSetup:
    """The setup of strategy ``name`` for these binary training labels."""
    labels = np.asarray(train_labels)
    counts = np.bincount(labels, minlength=2)
    if len(counts) != 2 or counts.min() == 0:
        raise InputError(f"imbalance strategy needs both classes in the training labels; counts are {counts.tolist()}")
    return _STRATEGIES[check_strategy(name)](labels)


def balanced_class_weights(labels: np.ndarray) -> torch.Tensor:
    """``n / (2 * count_c)`` per class: 1 for both when balanced, larger for the rarer."""
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    return torch.tensor(weights, dtype=torch.float32)


def balanced_sample_weights(labels: np.ndarray) -> torch.Tensor:
    """``1 / count`` of each example's class, so both classes are drawn equally often."""
    counts = np.bincount(labels, minlength=2)
    return torch.from_numpy(1.0 / counts[labels])


@register_strategy("none")
def no_strategy(labels: np.ndarray) -> ImbalanceSetup:
    """Plain cross-entropy, uniform shuffling: the control."""
    return ImbalanceSetup()


@register_strategy("weighted_loss")
def weighted_loss(labels: np.ndarray) -> ImbalanceSetup:
    """Cross-entropy with balanced class weights."""
    return ImbalanceSetup(class_weights=balanced_class_weights(labels))


@register_strategy("oversampling")
def oversampling(labels: np.ndarray) -> ImbalanceSetup:
    """Draw the minority as often as the majority (with replacement)."""
    return ImbalanceSetup(sample_weights=balanced_sample_weights(labels))


@register_strategy("both")
def weighted_loss_and_oversampling(labels: np.ndarray) -> ImbalanceSetup:
    """Oversampling and a weighted loss together, each doing half of the balancing.

    The study applied both in full: batches drawn 50/50, then the minority's
    errors weighed ``count_0 / count_1`` times more again. That balances the
    classes twice, as if the minority were the majority (73 % on a 27 %
    minority), and pushed models to call every image positive: every ``both``
    trial of the CNNs collapsed in issue 10's search. Here examples are drawn
    with weight ``count ** -0.5`` of their class, so batches hold the classes
    in proportion ``sqrt(count)``, and the loss weighs each class by
    ``1 / sqrt(count)``, normalised to a mean weight of 1 over those batches:
    together, balanced once (benchmarks/collapse_rate.py measures the two).
    """
    counts = np.bincount(labels, minlength=2).astype(float)
    roots = np.sqrt(counts)
    return ImbalanceSetup(class_weights=torch.tensor(roots.sum() / (2 * roots), dtype=torch.float32),
                          sample_weights=torch.from_numpy(1.0 / roots[labels]))
