"""Named search spaces: which config values a search tries.

A space lists, for each config key it varies, the values to try; keys it
leaves out take ``trainables.DEFAULTS``. Grid search runs the full product;
Optuna samples the same values. Spaces are registered functions, and a JSON
file ``{"dimensions": {...}, "max_epochs": N}`` works as a space too. In a
file, a numeric dimension may be a distribution for Optuna instead of a
list: ``{"lr": {"loguniform": [1e-4, 1e-2]}}`` (:class:`Distribution`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.files import read_json
from trainables import DEFAULTS, InputError
from trainables.config import check_value

STUDY_LRS = (0.001, 0.01, 0.1)
STUDY_OPTIMIZERS = ("adam", "sgd")
STUDY_BATCH_SIZES = (32, 64)
STUDY_PATIENCES = (5, 7, 10)
STUDY_ARCHITECTURES = ("cnn", "cnn_bn", "resnet18", "resnet50", "efficientnet_b0")
STUDY_STRATEGIES = ("none", "weighted_loss", "oversampling", "both")
# Config keys that must be one value for the whole experiment, and why.
NOT_DIMENSIONS = {
    "metric": "because trials are ranked against each other on one metric; pass --metric",
    "min_balanced_accuracy": "because trials are ranked under one guard; pass --min-balanced-accuracy",
    "target_recall": "because trials are ranked at one operating point; pass --target-recall",
    "folds": "because trials are compared on the same validation images; pass --folds",
    "seeds": "because trials are compared on the same seeds; pass --seeds",
    "max_epochs": 'because it is the schedulers\' epoch budget; set "max_epochs" beside "dimensions" or pass --max-epochs',
}


@dataclass(frozen=True)
class Distribution:
    """A numeric dimension drawn from a range (Optuna only): loguniform or uniform floats, randint integers.

    Both ends are included; ``randint`` [2, 5] draws 2, 3, 4 or 5.
    """

    kind: str
    low: float
    high: float

    def to_tune(self) -> Any:
        """The Tune search-space domain, which Tune's OptunaSearch turns into Optuna's distribution."""
        return DISTRIBUTIONS[self.kind](self.low, self.high)

    def __str__(self) -> str:  # as search.json records it, and --dry-run and errors show it
        return f"{self.kind}({self.low:g}, {self.high:g})"


# Tune's domain per kind; randint's upper end is exclusive in Tune, inclusive here.
DISTRIBUTIONS: dict[str, Callable[[float, float], Any]] = {
    "loguniform": lambda low, high: _tune().loguniform(low, high),
    "uniform": lambda low, high: _tune().uniform(low, high),
    "randint": lambda low, high: _tune().randint(int(low), int(high) + 1),
}
# The keys a distribution can give, by kind: numbers that nothing enumerates before the trials run.
DISTRIBUTION_KEYS = {"loguniform": ("lr", "min_delta"), "uniform": ("lr", "min_delta"),
                     "randint": ("patience", "min_epochs")}


def _tune() -> Any:
    from ray import tune

    return tune


@dataclass(frozen=True)
class Space:
    """Values to try per config key, and the epoch budget of each trial."""

    name: str
    dimensions: dict[str, tuple[Any, ...] | Distribution]
    max_epochs: int
    description: str = ""

    @property
    def num_grid_trials(self) -> float:
        """The combinations of the dimensions' values: infinite with a distribution."""
        if self.distributions:
            return math.inf
        return math.prod(len(v) for v in self.dimensions.values())

    @property
    def distributions(self) -> dict[str, Distribution]:
        return {k: v for k, v in self.dimensions.items() if isinstance(v, Distribution)}

    def varies(self, key: str) -> bool:
        """Whether trials take more than one value of ``key``."""
        values = self.dimensions.get(key, ())
        return isinstance(values, Distribution) or len(values) > 1

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(self.dimensions.get("architecture", (DEFAULTS["architecture"],)))

    def values(self, key: str, *, default: Any) -> tuple[Any, ...]:
        """The values a trial's ``key`` can take: the dimension's, else ``default`` alone."""
        return tuple(self.dimensions.get(key, (default,)))

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every combination of the dimensions' values, in grid order."""
        keys = list(self.dimensions)
        for values in itertools.product(*(self.dimensions[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))

    def describe(self, *, trials: int | None = None, searcher: str = "grid", max_epochs: int | None = None) -> str:
        """``N trials`` and one line per dimension; ``trials`` and ``max_epochs`` as a search's flags set them."""
        about = f"{self.name}: {self.description}" if self.description else self.name
        count = self.num_grid_trials if trials is None else trials
        combinations = "a continuous space" if self.distributions else f"the {self.num_grid_trials} combinations"
        drawn = "" if searcher == "grid" else f", drawn by {searcher} from {combinations}"
        lines = [f"{count} trials ({about}{drawn})"]
        lines += [f"  {k}: {v if isinstance(v, Distribution) else ', '.join(map(str, v))}"
                  for k, v in self.dimensions.items()]
        lines.append(f"  max_epochs: {self.max_epochs if max_epochs is None else max_epochs}")
        return "\n".join(lines)


_SPACES: dict[str, Callable[[], Space]] = {}


def register_space(fn: Callable[[], Space]) -> Callable[[], Space]:
    """Register a function returning a :class:`Space` under its name."""
    _SPACES[fn.__name__] = fn
    return fn


def list_spaces() -> list[str]:
    """Names of the registered spaces."""
    return list(_SPACES)


def get_space(name: str) -> Space:
    """The registered space ``name``, or the space in JSON file ``name``; validated."""
    if name in _SPACES:
        space = _SPACES[name]()
    elif name.endswith(".json"):
        space = _space_from_file(Path(name))
    else:
        raise InputError(f"unknown space {name!r}; choose from {', '.join(_SPACES)} or pass a .json file")
    validate_space(space)
    return space


def validate_space(space: Space) -> None:
    """Check every value of every dimension, naming the first bad one.

    Each value is checked on its own (``trainables.config.check_value``): no
    constraint spans two keys, so this covers every combination without
    building the product, which has millions of entries in a large space.
    """
    if not space.dimensions:
        raise InputError(f"space {space.name!r} has no dimension")
    for key, values in space.dimensions.items():
        if key not in DEFAULTS:
            raise InputError(f"space {space.name!r}: unknown dimension {key!r}; known keys are {', '.join(DEFAULTS)}")
        if key in NOT_DIMENSIONS:
            raise InputError(f"space {space.name!r}: {key!r} cannot be a dimension, {NOT_DIMENSIONS[key]}")
        if isinstance(values, Distribution):
            _check_distribution(space.name, key, values)
            continue
        if not isinstance(values, (list, tuple)) or not values:
            raise InputError(f"space {space.name!r}: dimension {key!r} must be a non-empty list of values, or a "
                             f"distribution like {{\"loguniform\": [0.0001, 0.01]}}; got "
                             f"{list(values) if isinstance(values, tuple) else values!r}")
        for value in values:
            try:
                check_value(key, value)
            except InputError as err:
                raise InputError(f"space {space.name!r}: {err}") from None
    try:
        check_value("max_epochs", space.max_epochs)
    except InputError as err:
        raise InputError(f"space {space.name!r}: {err}") from None


def _check_distribution(space: str, key: str, dist: Distribution) -> None:
    """A distribution of a key that takes one, whose ends are valid values of it, low below high."""
    if key not in DISTRIBUTION_KEYS[dist.kind]:
        takes = [k for k, keys in DISTRIBUTION_KEYS.items() if key in keys]
        raise InputError(f"space {space!r}: {key!r} cannot be a {dist.kind} distribution; "
                         + (f"it can be {' or '.join(takes)}" if takes else "give it as a list of values"))
    for end in (dist.low, dist.high):
        try:
            check_value(key, int(end) if dist.kind == "randint" and float(end).is_integer() else end)
        except InputError as err:
            raise InputError(f"space {space!r}: {key} {dist}: {err}") from None
    if not dist.low < dist.high:
        raise InputError(f"space {space!r}: {key} {dist}: the low end must be below the high end")


def _dimension_from_file(path: Path, key: str, value: Any) -> tuple[Any, ...] | Distribution | Any:
    """A list as a tuple of values; ``{"choice": [...]}`` as its values; ``{"loguniform": [low, high]}`` and the
    other :data:`DISTRIBUTIONS` as a :class:`Distribution`; anything else as it is, for validate_space to refuse."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, spec),) = value.items()
        if kind == "choice" and isinstance(spec, list):
            return tuple(spec)
        if kind in DISTRIBUTIONS:
            if not (isinstance(spec, list) and len(spec) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)):
                raise InputError(f"space file {str(path)!r}: {key!r}: {kind} takes [low, high]; got {spec!r}")
            return Distribution(kind, spec[0], spec[1])
        raise InputError(f"space file {str(path)!r}: {key!r}: unknown distribution {kind!r}; choose from "
                         f"choice, {', '.join(DISTRIBUTIONS)}")
    return value


def _space_from_file(path: Path) -> Space:
    raw = read_json(path, missing=f"space file {str(path)!r} does not exist",
                    unreadable=f"space file {str(path)!r} is not valid JSON")
    if not isinstance(raw, dict) or not isinstance(raw.get("dimensions"), dict):
        raise InputError(f'space file {str(path)!r} must be an object like {{"dimensions": {{"lr": [0.001, 0.01]}}, "max_epochs": 20}}')
    max_epochs = raw.get("max_epochs", DEFAULTS["max_epochs"])
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise InputError(f"space file {str(path)!r}: max_epochs must be an integer >= 1; got {max_epochs!r}")
    dimensions = {k: _dimension_from_file(path, k, v) for k, v in raw["dimensions"].items()}
    return Space(path.stem, dimensions, max_epochs, raw.get("description", f"from {path}"))


@register_space
def smoke() -> Space:
    """Four tiny trials, seconds each on a CPU: for tests and a first look."""
    return Space(
        "smoke",
        {
            "architecture": ("cnn", "cnn_bn"),
            "strategy": ("none", "both"),
            "lr": (0.001,),
            "batch_size": (32,),
            "patience": (3,),
        },
        # On the embedded chest X-rays every model calls everything positive for its first
        # few epochs; at 3 epochs all four failed the guard, which made a poor first look.
        max_epochs=6,
        description="study CNNs x {none, both}, 6 epochs",
    )


@register_space
def quick() -> Space:
    """The study's question at a glance: its two CNNs x 4 strategies, one good optimiser setting.

    Sized for ``make run`` to answer within five minutes on two CPUs on the
    embedded PneumoniaMNIST subsample (400 training images). Batches of 32
    rather than 64: at 64, 400 images are 7 steps an epoch, and cnn_bn's
    BatchNorm statistics had not settled before patience 5 stopped it, so
    every cnn_bn trial failed the guard (all predicted positive); at 32 every
    trial passes it. Augmentation is left to the full space.
    """
    return Space(
        "quick",
        {
            "architecture": ("cnn", "cnn_bn"),
            "strategy": STUDY_STRATEGIES,
            "augment": (False,),
            "optimizer": ("adam",),
            "lr": (0.001,),
            "batch_size": (32,),
            "patience": (4,),
        },
        max_epochs=12,
        description="study CNNs x 4 strategies, adam lr 0.001, batch 32, 12 epochs",
    )


@register_space
def full() -> Space:
    """The study's whole grid: 5 architectures x 4 strategies x 2 x 2 x 3 x 2 x 3 = 1,440 trials."""
    return Space(
        "full",
        {
            "architecture": STUDY_ARCHITECTURES,
            "strategy": STUDY_STRATEGIES,
            "augment": (False, True),
            "optimizer": STUDY_OPTIMIZERS,
            "lr": STUDY_LRS,
            "batch_size": STUDY_BATCH_SIZES,
            "patience": STUDY_PATIENCES,
        },
        max_epochs=50,
        description="the study's grid over all five architectures",
    )

