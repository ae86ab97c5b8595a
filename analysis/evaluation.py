"""Reload a trial's kept model and score it: the only place the test split is read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ray import tune
from torch import nn

from search.data_record import check_same_data, load_experiment_data
from trainables import Dataset, Scores, TrialConfig, data_device, kept_model, load_kept, score_split

__all__ = ["Scores", "load_kept_model", "rebuild_datasets", "score_split"]


def rebuild_datasets(settings: dict[str, Any], architectures: Iterable[str],
                     recorded: dict[str, Any] | None = None) -> dict[int, Dataset]:
    """The experiment's data again, with the same source, splits and sizes (from search.json).

    DataChangedError when it is not the data ``recorded`` (``data.json``) says the search saw.
    """
    datasets = load_experiment_data(architectures, settings.get("data", {}))
    check_same_data(datasets, recorded)
    return datasets


def load_kept_model(checkpoint: tune.Checkpoint) -> tuple[nn.Module, TrialConfig, int]:
    """The kept (lowest-val-loss) model of a checkpoint, its config and its image size."""
    with checkpoint.as_directory() as folder:
        kept = load_kept(folder)
    model, cfg = kept_model(kept, device=data_device())
    return model, cfg, kept["image_size"]
