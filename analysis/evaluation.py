"""The experiment's data rebuilt for the analysis; kept models load with trainables.load_kept_model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from search.data_record import check_same_data, load_experiment_data
from trainables import Dataset, KeptModel, Scores, load_kept_model

__all__ = ["KeptModel", "Scores", "load_kept_model", "rebuild_datasets"]


def rebuild_datasets(settings: dict[str, Any], architectures: Iterable[str],
                     recorded: dict[str, Any] | None = None) -> dict[int, Dataset]:
    """The experiment's data again, with the same source, splits and sizes (from search.json).

    DataChangedError when it is not the data ``recorded`` (``data.json``) says the search saw.
    """
    datasets = load_experiment_data(architectures, settings.get("data", {}))
    check_same_data(datasets, recorded)
    return datasets
