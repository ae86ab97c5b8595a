"""An experiment's data: rebuilt from its recorded options, and checked against the record of what it was.

``search.json`` records the options the data was built from (source, sizes,
split fractions, seed, ``--dedup``); ``data.json`` records what the data was
(``trainables.identity.DataRecord``: each image's hash and label, the splits,
the duplicates). ``--resume`` and the analysis rebuild the data from the
options and refuse, in one line, data that is no longer what the search saw:
an image changed, added or relabelled in place would otherwise move between
splits or change the test figures unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trainables import DEFAULTS, Dataset, InputError, get_spec, load_datasets, preferred_image_size
from trainables.identity import first_difference

DATA_FILE = "data.json"


class DataChangedError(InputError):
    """The data at an experiment's source is not the data its search saw."""


def image_sizes(architectures: Iterable[str], data: dict[str, Any]) -> dict[tuple[str, int | None], int]:
    """Pixels of each architecture under each image size the data options allow.

    Keyed by (architecture, ``image_size`` of the trial's config), as ``train_fn`` picks its data.
    """
    source_size = preferred_image_size(data.get("source"))
    requested = data.get("image_size")
    overrides = requested if isinstance(requested, list) else [requested]
    return {(a, o): get_spec(a).trial_image_size(override=o, source_default=source_size)
            for a in architectures for o in overrides}


def load_experiment_data(architectures: Iterable[str], data: dict[str, Any]) -> dict[int, Dataset]:
    """The data of an experiment, decoded once at every size its architectures need, from its data options."""
    return load_datasets(data.get("source"), image_sizes=set(image_sizes(architectures, data).values()),
                         positive_class=data.get("positive_class"), seed=data.get("seed", DEFAULTS["seed"]),
                         val_fraction=data.get("val_fraction", 0.15), test_fraction=data.get("test_fraction", 0.15),
                         dedup=data.get("dedup", False))


def data_record(datasets: dict[int, Dataset]) -> dict[str, Any] | None:
    """What ``data.json`` holds for these data sets; None for data sets built by hand, without a record."""
    record = next(iter(datasets.values())).record
    return None if record is None else record.to_json()


def check_same_data(datasets: dict[int, Dataset], recorded: dict[str, Any] | None) -> None:
    """DataChangedError, in one line, when the data differs from ``recorded`` (a ``data.json``; None: not recorded)."""
    current = next(iter(datasets.values())).record
    if recorded is None or current is None:
        return
    difference = first_difference(recorded, current)
    if difference:
        raise DataChangedError(f"the data at {current.source} is not the data this experiment's search saw: "
                               f"{difference}; restore it, or start a new search")
