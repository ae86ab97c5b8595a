"""Disk bounded by design: what a trial keeps on disk while it runs and after it ends, whatever the number of trials.

A running trial's checkpoint holds its resume state and its deliverable
(trainables.checkpoints). Tune keeps every checkpoint it is given
(``num_to_keep=None``, so that no checkpoint forces a snapshot of the
experiment), so the search deletes a trial's previous checkpoint folder as
soon as Tune has a newer one: a running trial has one folder.
When a trial ends (early stopping, its epoch budget, or a scheduler stopping
it), its last checkpoint is marked ended, any other folder of the trial (left
by a crash) is deleted, and so is its resume state. Its deliverable, the
kept weights, stays only while the trial is among those
the analysis can need: the best ``keep_best`` trials overall, and the best
trial of each architecture x strategy x augmentation group (the study's
comparison). ``trials.csv`` and every trial's per-epoch results stay.

Measured peaks and bytes per checkpoint are in docs/benchmarks.md
(benchmarks/disk_usage.py).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow.fs
from ray import tune
from ray.tune.experiment import Trial

from search.results import best_per_group, rank_trials, trial_row
from trainables.checkpoints import (
    KEPT_FILE,
    RESUME_FILE,
    checkpoint_folders,
    delete_checkpoint,
    delete_checkpoint_file,
    delete_folder,
    mark_ended,
)

DEFAULT_KEEP_BEST = 10


def weights_to_keep(trials: pd.DataFrame, *, mode: str, keep_best: int) -> set[str]:
    """The trial ids whose kept weights stay: the best ``keep_best`` overall and the best of each group."""
    if trials.empty:
        return set()
    top = rank_trials(trials.dropna(subset=["objective"]), mode=mode).head(keep_best)
    return set(top["trial_id"]) | set(best_per_group(trials, mode=mode)["trial_id"])


class WeightRetention(tune.Callback):
    """Tune callback: a trial's superseded checkpoints go at once; a finished one's resume state and unneeded weights.

    Runs in the driver. After ``--resume`` it starts from the restored trials,
    so weights deleted before the interruption are not counted on.
    """

    def __init__(self, *, mode: str, keep_best: int = DEFAULT_KEEP_BEST) -> None:
        self.mode = mode
        self.keep_best = keep_best
        self._rows: dict[str, dict[str, Any]] = {}  # finished trials still holding weights, as trials.csv rows
        self._checkpoints: dict[str, tune.Checkpoint] = {}
        self._seeded = False

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: tune.Checkpoint,
                      **info: Any) -> None:
        # Tune calls this before it records ``checkpoint``: trial.checkpoint is still the one it supersedes.
        # Deleted before Tune's next snapshot, it may be what a restored experiment names; the trial
        # then continues from its newest folder instead (trainables.train_fn).
        previous = trial.checkpoint
        if previous is not None and previous.path.rstrip("/") != checkpoint.path.rstrip("/"):
            delete_checkpoint(previous)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if not self._seeded:  # a fresh run has no finished trial; a resumed one starts from those it restored
            self._seeded = True
            for other in trials:
                if other is not trial and other.status == Trial.TERMINATED:
                    self._record(other)
        if trial.checkpoint is not None:
            _end(trial.checkpoint)
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


def _end(last: tune.Checkpoint) -> None:
    """A finished trial's last checkpoint marked ended (before anything goes), its other folders and resume state deleted.

    Other folders exist only after a crash: one cut short, or the source of
    the copy a restored trial reported (trainables.train_fn).
    """
    if not mark_ended(last):
        return  # already gone
    path = last.path.rstrip("/")
    for _, other in checkpoint_folders(last.filesystem, path.rsplit("/", 1)[0]):
        if other != path:
            delete_folder(last.filesystem, other)
    delete_checkpoint_file(last, RESUME_FILE)


def recreate_named_folders(experiment_path: str, *, filesystem: pyarrow.fs.FileSystem | None = None) -> int:
    """Empty folders where an interrupted experiment's snapshot names a checkpoint the search has deleted since.

    The search deletes a superseded checkpoint at once; Tune snapshots the
    experiment only every so often, and refuses to restore a trial whose
    named folder is gone ("Could not recover from checkpoint as it does not
    exist on storage anymore"). With an empty folder there it goes ahead;
    the trial then continues from its newest complete folder
    (trainables.train_fn), and the empty one is deleted with the rest.
    Returns how many folders were made; call it before ``Tuner.restore``. ``filesystem``: the experiment's
    (a bucket's, trainables.storage), None for a local path.
    """
    from ray import tune

    try:
        trials = tune.ExperimentAnalysis(experiment_path, storage_filesystem=filesystem).trials
    except (ValueError, FileNotFoundError):  # no snapshot yet: Tuner.restore says so itself
        return 0
    made = 0
    for trial in trials:
        checkpoint = trial.checkpoint
        if checkpoint is None or trial.status == Trial.TERMINATED:  # a finished trial is not restored
            continue
        if checkpoint.filesystem.get_file_info(checkpoint.path).type == pyarrow.fs.FileType.NotFound:
            checkpoint.filesystem.create_dir(checkpoint.path)
            made += 1
    return made
