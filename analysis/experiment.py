"""Load an experiment written by ``search.run`` into pandas: the only module here that touches Ray.

>>> from analysis import load_trials, load_epochs
>>> trials = load_trials("results/quick-...")   # one row per trial
>>> epochs = load_epochs("results/quick-...")   # one row per trial and epoch
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from ray import tune

from search.comparison import COMPARISONS_FILE, tie_marks
from search.data_record import DATA_FILE
from search.results import SETTINGS_FILE, trial_row
from trainables import DEFAULTS, KEPT_FILE, has_checkpoint_file, read_history
from trainables.classifier import BEST_FILE
from trainables.ray_compat import trial_folder
from trainables.storage import is_remote, locate


class ExperimentError(ValueError):
    """A path that is not a usable experiment; the message is one line."""


@dataclass(frozen=True)
class Experiment:
    """An experiment's trials, learning curves, settings and checkpoints."""

    path: str
    trials: pd.DataFrame  # one row per trial, the columns of trials.csv
    epochs: pd.DataFrame  # one row per trial and epoch, with the trial's config/ columns
    settings: dict[str, Any]  # search.json; empty for an experiment without it
    checkpoints: dict[str, tune.Checkpoint] = field(default_factory=dict)  # trial_id -> latest checkpoint
    data_record: dict[str, Any] | None = None  # data.json: what the data was (None for older experiments)
    best: dict[str, Any] | None = None  # best.json: the deliverable (search.deliverable); None before the search ended
    comparisons: dict[str, Any] | None = None  # comparisons.json: ties and strategy effects (search.comparison)

    @property
    def metric(self) -> str:
        return self.settings.get("metric") or DEFAULTS["metric"]

    @property
    def mode(self) -> str:
        return self.settings.get("mode") or "max"

    @property
    def folds(self) -> int:
        """K of a cross-validated search (``--folds``), 1 for one validation split."""
        return int((self.settings.get("fixed") or {}).get("folds", DEFAULTS["folds"]))


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Read an experiment from a local folder or a storage URI (``s3://...``) Ray can read.

    A bucket's experiment is read in place, through the one filesystem trainables.storage makes of the URI:
    Ray's state and results, the JSON files beside them, and the checkpoints, each of which carries that
    filesystem (a model is downloaded one checkpoint folder at a time, when the report reloads it).
    """
    uri = _as_uri(path)
    try:
        where = locate(uri) if is_remote(uri) else None
        analysis = (tune.ExperimentAnalysis(uri) if where is None
                    else tune.ExperimentAnalysis(where.path, storage_filesystem=where.filesystem))
    except (ValueError, FileNotFoundError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExperimentError(f"{str(path)!r} is not an experiment written by search.run: {first}") from None
    settings = _read_json(uri, SETTINGS_FILE) or {}
    max_epochs = settings.get("space", {}).get("max_epochs") or DEFAULTS["max_epochs"]
    rows, curves, checkpoints = [], [], {}
    for trial in analysis.trials:
        metrics = trial.last_result or {}
        error = _error_line(trial)
        rows.append(trial_row(trial_id=trial.trial_id, config=trial.config, metrics=metrics, error=error,
                              path=trial_folder(trial), max_epochs=max_epochs,
                              weights_kept=has_checkpoint_file(trial.checkpoint, KEPT_FILE)))
        if trial.checkpoint is not None:
            checkpoints[trial.trial_id] = trial.checkpoint
        frame = learning_curve(analysis.trial_dataframes.get(trial.trial_id), read_history(trial.checkpoint),
                               config=trial.config)
        if not frame.empty:
            curves.append(frame.assign(trial_id=trial.trial_id))
    epochs = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    trials = pd.DataFrame(rows)
    comparisons = _read_json(uri, COMPARISONS_FILE)
    if comparisons is not None and not trials.empty:
        trials = trials.assign(tie=tie_marks(trials, comparisons))
    return Experiment(str(path), trials, epochs, settings, checkpoints, _read_json(uri, DATA_FILE),
                      _read_json(uri, BEST_FILE), comparisons)


def learning_curve(recorded: pd.DataFrame | None, history: list[dict[str, Any]], *,
                   config: dict[str, Any]) -> pd.DataFrame:
    """A trial's rows, one per epoch: Tune's record, completed from the history its latest checkpoint carries.

    Tune writes a trial's rows to the storage only with its periodic snapshots
    of the experiment, so a driver that died between two snapshots leaves gaps
    that the trial's checkpoints do not have (trainables.save_checkpoint). Rows
    taken from there lack Tune's own columns (timestamps, ``time_total_s``).
    """
    recorded = recorded if recorded is not None else pd.DataFrame()
    if not recorded.empty:
        # A trial resumed from a checkpoint older than its last report reports those epochs
        # again (the same values: its generators were checkpointed too); keep one row each.
        recorded = recorded.drop_duplicates(subset="training_iteration", keep="last")
    seen = set(recorded["training_iteration"]) if not recorded.empty else set()
    missing = [row for row in history if row.get("training_iteration") not in seen]
    if not missing:
        return recorded
    settings = {f"config/{key}": value for key, value in config.items()}
    added = pd.DataFrame([{**row, **settings} for row in missing])
    return pd.concat([recorded, added], ignore_index=True).sort_values("training_iteration", ignore_index=True)


def load_trials(path: str | os.PathLike) -> pd.DataFrame:
    """One row per trial: ``config/...`` columns, the kept state's metrics, ``ended_by``, ``error``."""
    return load_experiment(path).trials


def load_epochs(path: str | os.PathLike) -> pd.DataFrame:
    """One row per trial and epoch: everything the trial reported, with its ``config/...`` columns."""
    return load_experiment(path).epochs


def _as_uri(path: str | os.PathLike) -> str:
    text = str(path)
    if "://" in text:
        return text
    # pyarrow, under Ray's storage layer, needs an absolute local path.
    return os.path.abspath(os.path.expanduser(text))


def _read_json(uri: str, name: str) -> dict[str, Any] | None:
    """A JSON file beside the experiment state (search.json, data.json, best.json), read through pyarrow as Ray reads."""
    try:
        return json.loads((locate(uri) / name).read_text())
    except (OSError, ValueError):  # absent, unreadable or not JSON: the report says less
        return None


def _error_line(trial: Any) -> str:
    if trial.status != "ERROR":
        return ""
    try:
        text = (trial.get_error() and str(trial.get_error())) or ""
    except Exception:  # the error file may be gone; the status still says it failed
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "error (no message recorded)"
