"""Disk bounded by design: what a finished trial leaves on disk, whatever the number of trials.

A running trial's checkpoint holds its resume state and its deliverable
(trainables.checkpoints). When a trial finishes (early stopping, its epoch
budget, or a scheduler stopping it), its resume state is deleted at once.
Its deliverable, the kept weights, stays only while the trial is among those
the analysis can need: the best ``keep_best`` trials overall, and the best
trial of each architecture x strategy x augmentation group (the study's
comparison). ``trials.csv`` and every trial's per-epoch results stay.

Measured peaks and bytes per checkpoint are in docs/benchmarks.md
(benchmarks/disk_usage.py).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from ray import tune
from ray.tune.experiment import Trial

from search.results import best_per_group, rank_trials, trial_row
from trainables import KEPT_FILE, RESUME_FILE, delete_checkpoint_file

DEFAULT_KEEP_BEST = 10


def weights_to_keep(trials: pd.DataFrame, *, mode: str, keep_best: int) -> set[str]:
    """The trial ids whose kept weights stay: the best ``keep_best`` overall and the best of each group."""
    if trials.empty:
        return set()
    top = rank_trials(trials.dropna(subset=["objective"]), mode=mode).head(keep_best)
    return set(top["trial_id"]) | set(best_per_group(trials, mode=mode)["trial_id"])


class WeightRetention(tune.Callback):
    """Tune callback: on each finished trial, drop its resume state and the weights no longer among the kept.

    Runs in the driver. After ``--resume`` it starts from the restored trials,
    so weights deleted before the interruption are not counted on.
    """

    def __init__(self, *, mode: str, keep_best: int = DEFAULT_KEEP_BEST) -> None:
        self.mode = mode
        self.keep_best = keep_best
        self._rows: dict[str, dict[str, Any]] = {}  # finished trials still holding weights, as trials.csv rows
        self._checkpoints: dict[str, tune.Checkpoint] = {}
        self._seeded = False

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if not self._seeded:  # a fresh run has no finished trial; a resumed one starts from those it restored
            self._seeded = True
            for other in trials:
                if other is not trial and other.status == Trial.TERMINATED:
                    self._record(other)
        if trial.checkpoint is not None:
            delete_checkpoint_file(trial.checkpoint, RESUME_FILE)
        self._record(trial)
        self._prune()

    def _record(self, trial: Trial) -> None:
        if trial.checkpoint is None or not trial.last_result:
            return
        self._rows[trial.trial_id] = trial_row(trial_id=trial.trial_id, config=trial.config, metrics=trial.last_result,
                                               error="", path="", max_epochs=0)
        self._checkpoints[trial.trial_id] = trial.checkpoint

    def _prune(self) -> None:
        keep = weights_to_keep(pd.DataFrame(self._rows.values()), mode=self.mode, keep_best=self.keep_best)
        for trial_id in [t for t in self._rows if t not in keep]:
            # A trial that leaves the kept set never returns to it: the trials above it only multiply.
            delete_checkpoint_file(self._checkpoints.pop(trial_id), KEPT_FILE)
            del self._rows[trial_id]
