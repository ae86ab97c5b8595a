"""Every use of Ray's private names, in one place, each with why and what public API would replace it.

pyproject.toml bounds ``ray[tune]`` to the minor versions the suite has
passed on, because these may change in any release. Tests reach Ray's
internals through this module only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow.fs

# The name Ray Tune gives a trial's checkpoint folders, checkpoint_000012 (ray.train's
# _get_checkpoint_dir_name, "checkpoint_%06d"). No public API names it; the search reads the folders to
# resume from the newest complete one (trainables.checkpoints).
CHECKPOINT_FOLDER_PREFIX = "checkpoint_"
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # read by Ray at import (ray._private.ray_constants)


@dataclass
class TrialStorage:
    """Where a running trial's checkpoints go, from Ray's private ``StorageContext`` (``tune.get_context().get_storage()``).

    A trial restored after a crash must number its next checkpoint after the
    newest folder on disk, which Tune may not have recorded; only the
    StorageContext holds that counter. Public replacement: none yet
    (``ray.tune.get_context()`` exposes the trial's folder only as a local path).
    """

    context: Any  # ray.train._internal.storage.StorageContext

    @property
    def filesystem(self) -> pyarrow.fs.FileSystem:
        return self.context.storage_filesystem

    @property
    def trial_path(self) -> str:
        return self.context.trial_fs_path

    def number_after(self, index: int) -> None:
        """Make Tune number the trial's next checkpoint folder after ``index`` (and after its own last)."""
        self.context.current_checkpoint_index = max(self.context.current_checkpoint_index, index)


def trial_storage() -> TrialStorage:
    """The storage of the trial running in this worker."""
    from ray import tune

    return TrialStorage(tune.get_context().get_storage())


def trial_folder(trial: Any) -> str:
    """A ``Trial``'s folder on its storage (``Trial.storage`` is a StorageContext; Trial.path is the public, local one)."""
    return trial.storage.trial_fs_path


def forget_metric_windows(trial: Any) -> None:
    """Free the last-5/last-10 windows Tune keeps per metric of ``trial`` (``Trial.run_metadata.metric_n_steps``).

    No public API frees them; a finished trial needs none (search.tuner.ForgetFinishedWindows).
    """
    trial.run_metadata.metric_n_steps = {}  # also what snapshots save of it from now on


def asha_rung_epochs(grace_period: int, reduction_factor: float, max_t: int) -> list[float]:
    """The milestones of Ray Tune's ASHA bracket (``_Bracket._rungs``), lowest first.

    ASHAScheduler exposes no rungs; the search checkpoints a trial at each so that a stopped trial's
    checkpoint holds its kept weights (trainables.checkpoints.asha_rungs).
    """
    from ray.tune.schedulers.async_hyperband import _Bracket

    return sorted(milestone for milestone, _ in _Bracket(grace_period, max_t, reduction_factor, 0)._rungs)


@contextmanager
def loopback_node() -> Iterator[dict[str, Any]]:
    """While it is open, a local ``ray.init(**kwargs)`` keeps 127.0.0.1 as its node address; yields the kwargs.

    Ray rewrites 127.0.0.1 to the machine's outward address unless its
    single-node flag is off (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``,
    read when the address is resolved; the variable only at import, and by
    the processes Ray starts), and ``_node_ip_address`` is the private
    argument that names the node's address. Public replacement: ``ray start
    --node-ip-address`` for a cluster started by hand.
    """
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(SINGLE_NODE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_NODE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield {"_node_ip_address": "127.0.0.1"}
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(SINGLE_NODE_ENV, None)
        else:
            os.environ[SINGLE_NODE_ENV] = saved_env


class _DropTokenAuthEnabled(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


@contextmanager
def quiet_token_auth_warning() -> Iterator[None]:
    """While a local Ray starts, without Ray's warning that it enabled token authentication (its default).

    Ray logs it on every run (``ray._private.authentication.authentication_token_setup``), between the run's
    own lines, for a Ray that this run starts on 127.0.0.1 alone. Setting RAY_AUTH_MODE=token to silence it
    breaks the driver's connection (the token is cached before the mode is read again). A warning that
    token authentication is disabled, or any other, still shows.
    """
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    drop = _DropTokenAuthEnabled()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def optuna_study(searcher: Any) -> Any:
    """The Optuna study inside Tune's ``OptunaSearch`` (``_ot_study``), to enqueue a trial or read its trials.

    Public replacement: pass a study to OptunaSearch, which it does not take (only a storage and a name).
    """
    return searcher._ot_study


def optuna_trial(searcher: Any, key: str) -> Any:
    """The Optuna trial that Tune's ``OptunaSearch`` asked for ``key`` (``_ot_trials``), to tag it.

    Public replacement: none (OptunaSearch keeps the trials it asks for to itself).
    """
    return searcher._ot_trials[key]


def gc_thread_class() -> type:
    """The thread class Ray starts while it builds the driver's core worker, inside ``ray.init``.

    Only the interrupt tests use it, to send a SIGINT from inside ray.init.
    """
    from ray._private import gc_collect_manager

    return gc_collect_manager.PythonGCThread


def checkpoint_manager(config: Any) -> Any:
    """Ray's per-trial checkpoint bookkeeping (``_CheckpointManager``), for benchmarks/checkpoint_records.py."""
    from ray.train._internal.checkpoint_manager import _CheckpointManager

    return _CheckpointManager(config)


def training_result(checkpoint: Any, metrics: dict[str, Any]) -> Any:
    """What a trial's report registers with the checkpoint manager (``_TrainingResult``), for the same benchmark."""
    from ray.train._internal.session import _TrainingResult

    return _TrainingResult(checkpoint, metrics=metrics)


def mlflow_trial_runs(callback: Any) -> dict[Any, str]:
    """The MLflow run id of each trial that Ray's ``MLflowLoggerCallback`` logs (``_trial_runs``), to add to it.

    search.tracking puts a resumed trial's earlier run there, and logs a result as one batch into it.
    Public replacement: none (the callback creates a run per trial start, and one request per metric).
    """
    return callback._trial_runs
