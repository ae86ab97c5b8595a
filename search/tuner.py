"""From settings to a Ray Tune ``Tuner``: schedulers, search algorithms, resources."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.resources import trial_resources
from search.searchers import concurrent_trials, optuna
from search.retention import WeightRetention, recreate_named_folders
from search.spaces import Distribution, Space
from trainables import CheckpointPolicy, Dataset, asha_rungs, train_fn
from trainables.ray_compat import forget_metric_windows
from trainables.storage import Storage, locate

# What ASHA and Optuna compare: the objective with its ties broken as the final
# ranking breaks them. On recall, many trials tie (at 1.0, or at the guard's
# floor in their first epochs); ASHA lets every tie through a rung, so on the
# plain objective it stops few trials.
SEARCH_METRIC = "tiebroken_objective"
_USER_NEW_OUTPUT = os.environ.get("RAY_AIR_NEW_OUTPUT")  # as the user set it, before quiet_tune_output


@dataclass(frozen=True)
class SearchSettings:
    """Everything that shapes one experiment, already validated by the CLI."""

    space: Space
    name: str
    storage_path: Path | str  # a local folder, or a URI pyarrow reads (s3://bucket/path): trainables.storage
    scheduler: str = "grid"
    search: str = "grid"
    num_samples: int = 1  # Optuna trials; grid search runs every combination once
    mode: str = "max"
    fixed: dict[str, Any] = field(default_factory=dict)  # config keys set for every trial
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | str = 0.0  # a share of a GPU, or "auto" (search.resources)
    gpu_memory_mib: float | None = None  # one GPU's memory, for "auto"
    max_failures: int = 0
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None  # Tune stops the search after this many seconds (--time-budget)
    seed: int = 0
    reuse_actors: bool = True
    grace_period: int = 1  # ASHA's first rung, in epochs
    reduction_factor: float = 4  # ASHA keeps the best 1/reduction_factor of each rung
    checkpoint_period_s: float = 60.0  # at most this much of a trial's training is lost to a crash
    keep_weights: int = 10  # finished trials whose weights stay besides each group's best (search.retention)
    ensemble_top: int = 1  # the best trials whose mean probability is delivered beside the best one
    on_ties: str = "best"  # which of the trials tied with the best is delivered (search.comparison.TIE_RULES)
    verbose: bool = False  # Tune's own status tables and per-trial blocks
    tensorboard: bool = False  # Tune's TensorBoard event files per trial (CSV and JSON are always written)
    optuna_storage: str | None = None  # an Optuna storage URL (sqlite:///study.db) that keeps the study
    study_name: str | None = None  # the study's name in that storage; default: the experiment's name
    mlflow_uri: str | None = None  # --mlflow: every trial a run of the MLflow experiment `name` (search.tracking)

    @property
    def max_epochs(self) -> int:
        return self.fixed.get("max_epochs", self.space.max_epochs)

    @property
    def storage(self) -> Storage:
        """``storage_path`` as a filesystem and a path on it (resolved once per process)."""
        return locate(self.storage_path)

    @property
    def experiment(self) -> Storage:
        """The experiment's folder: ``storage_path / name``, on its filesystem."""
        return self.storage / self.name

    def describe(self, data: dict[str, Any]) -> dict[str, Any]:
        """A JSON-ready record of the experiment's settings and its data options."""
        return {
            "name": self.name,
            "space": {"name": self.space.name, "dimensions": self.space.dimensions, "max_epochs": self.max_epochs},
            "scheduler": self.scheduler,
            "asha": ({"grace_period": self.grace_period, "reduction_factor": self.reduction_factor}
                     if self.scheduler == "asha" else None),
            "search": self.search,
            "num_samples": self.num_samples,
            "metric": self.fixed.get("metric"),
            "mode": self.mode,
            "fixed": self.fixed,
            "on_ties": self.on_ties,
            "cpus_per_trial": self.cpus_per_trial,
            "gpus_per_trial": self.gpus_per_trial,
            "data": data,
            "mlflow": self.mlflow_uri,
        }


def asha(settings: SearchSettings) -> TrialScheduler:
    """ASHA over epochs (``training_iteration``), with Tune's defaults: first rung after 1 epoch, keep the best quarter.

    train_fn reports ``training_iteration`` as the epoch, so it stays the epoch
    when a restored trial continues from a checkpoint Tune had not recorded
    (Tune's own count would lag there), and the rungs stay where
    ``trainables.asha_rungs`` and the trials' checkpoints put them.
    ``max_t`` is the epoch budget. Rungs come at ``grace_period *
    reduction_factor**k`` epochs (1, 4, 16 by default). On the quick space
    (benchmarks/search_efficiency.py) these settings spent 72 epochs where grid
    spent 270, and chose the same configuration. A longer grace period suits
    models whose first epochs say little about their last.
    """
    return ASHAScheduler(time_attr="training_iteration", max_t=settings.max_epochs,
                         grace_period=settings.grace_period, reduction_factor=settings.reduction_factor)


def fifo(settings: SearchSettings) -> TrialScheduler:
    """Every trial runs until its own early stopping or ``max_epochs``."""
    return FIFOScheduler()


SCHEDULERS: dict[str, Callable[[SearchSettings], TrialScheduler]] = {"grid": fifo, "asha": asha}
# The epochs after which each scheduler may stop a trial: its checkpoint must be fresh there.
STOP_EPOCHS: dict[str, Callable[[SearchSettings], frozenset[int]]] = {
    "grid": lambda settings: frozenset(),
    "asha": lambda settings: asha_rungs(settings.grace_period, settings.reduction_factor, settings.max_epochs),
}
def _tracking(settings: SearchSettings) -> list:
    """The ``--mlflow`` callbacks; search.tracking is imported only then, since it imports mlflow (1.6 s)."""
    if settings.mlflow_uri is None:
        return []
    from search.tracking import tracking_callbacks

    return tracking_callbacks(settings.mlflow_uri, experiment=settings.name)


SEARCHERS: dict[str, Callable[[SearchSettings], Any] | None] = {"grid": None, "optuna": optuna}


def param_space(settings: SearchSettings) -> dict[str, Any]:
    """Tune's ``param_space``: grid_search over each dimension, or choices for a searcher."""
    sample = tune.grid_search if settings.search == "grid" else tune.choice
    varied = {k: v.to_tune() if isinstance(v, Distribution) else sample(list(v)) if len(v) > 1 else v[0]
              for k, v in settings.space.dimensions.items()}
    return {**settings.fixed, "max_epochs": settings.max_epochs, **varied}


def make_trainable(settings: SearchSettings, *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict],
                   source_image_size: int | None):
    """``train_fn`` with its data and weights in the object store (put there once), its checkpoints and resources."""
    checkpoints = CheckpointPolicy(epochs=STOP_EPOCHS[settings.scheduler](settings),
                                   period_s=settings.checkpoint_period_s)
    trainable = tune.with_parameters(train_fn, datasets=datasets, imagenet_states=imagenet_states,
                                     image_size=source_image_size, checkpoints=checkpoints)
    return tune.with_resources(trainable, trial_resources(
        cpus=settings.cpus_per_trial, gpus=settings.gpus_per_trial, gpu_mib=settings.gpu_memory_mib,
        source_image_size=source_image_size))


class ForgetFinishedWindows(Callback):
    """Frees the last values Tune keeps of each metric of a finished trial, to average them with its next result.

    For every numeric metric of every trial (41 here), Tune keeps the
    last 5 and last 10 values (``Trial.metric_n_steps``), to update the
    trial's ``last-5-avg`` and ``last-10-avg`` when the next result comes. A
    finished trial gets none, and its averages (``Trial.metric_analysis``,
    which ``ResultGrid.get_best_result`` reads) stay; only the windows go.
    They were the largest part of the driver's Python memory per trial, about
    60 KiB (tracemalloc; docs/benchmarks.md).
    """

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        forget_metric_windows(trial)


def logger_callbacks(settings: SearchSettings) -> list[Callback]:
    """Tune's CSV and JSON loggers, which ``analysis`` reads; its TensorBoard logger only with ``settings.tensorboard``.

    Tune adds all three unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is set; the
    TensorBoard files cost time at scale (benchmarks/tensorboard_overhead.py,
    docs/benchmarks.md), so they are opt-in.
    """
    _no_automatic_loggers()
    return [CSVLoggerCallback(), JsonLoggerCallback(), *([TBXLoggerCallback()] if settings.tensorboard else [])]


def _no_automatic_loggers() -> None:
    # Read by Tune when fit() starts (ray.tune.utils.callback._create_default_callbacks):
    # without it Tune would add the TensorBoard logger back. Every Tuner of this
    # process passes its loggers itself (logger_callbacks), so setting it here is safe.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"


def _lean_checkpoint_records() -> None:
    # Tune keeps a record of every checkpoint of a trial (num_to_keep=None), each with the full
    # result it came with, in the driver's memory and in every snapshot. With this set, Ray keeps
    # only the score attribute (none here) in the older records; the latest keeps its result.
    # 1,440 trials of 20 checkpoints: 154 MiB of records, 21 MiB with it (benchmarks/checkpoint_records.py).
    # Read by Ray (ray.train._internal.checkpoint_manager) at each checkpoint, in this process.
    os.environ["TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE"] = "1"


def quiet_tune_output(settings: SearchSettings) -> None:
    """Unless ``settings.verbose``: no Tune tables, banners or INFO lines; search.progress reports instead.

    ``RunConfig(verbose=0)`` silences the status tables and per-trial blocks,
    but Tune's newer output engine still prints a table of the experiment's
    settings at the start; the older engine, at verbosity 0, prints nothing.
    Tune reads RAY_AIR_NEW_OUTPUT when fit() starts.
    """
    if settings.verbose:  # the user's own choice back, should a quiet search of this process have changed it
        if _USER_NEW_OUTPUT is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = _USER_NEW_OUTPUT
        logging.getLogger("ray.tune").setLevel(logging.NOTSET)
        return
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # "Wrote the latest version of all result files ..."


def restore_tuner(settings: SearchSettings, *, retry_errored: bool, **inputs: Any) -> tune.Tuner:
    """The interrupted experiment of ``settings``: finished trials kept, unfinished ones from their checkpoints."""
    _no_automatic_loggers()  # the restored RunConfig carries the loggers it was started with
    _lean_checkpoint_records()
    quiet_tune_output(settings)
    experiment = settings.experiment
    recreate_named_folders(experiment.path, filesystem=experiment.ray_filesystem)
    return tune.Tuner.restore(
        experiment.path,
        storage_filesystem=experiment.ray_filesystem,
        trainable=make_trainable(settings, **inputs),
        resume_unfinished=True,
        resume_errored=retry_errored,  # from the errored trial's last checkpoint
        param_space=param_space(settings),
    )


def build_tuner(settings: SearchSettings, *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict],
                source_image_size: int | None, callbacks: Sequence[Callback] = ()) -> tune.Tuner:
    """A Tuner of ``train_fn`` over the settings' space; data and weights go through the object store.

    ``callbacks`` (e.g. :class:`search.progress.LiveProgress`) come after the loggers.
    """
    trainable = make_trainable(settings, datasets=datasets, imagenet_states=imagenet_states,
                               source_image_size=source_image_size)
    searcher = SEARCHERS[settings.search]
    _lean_checkpoint_records()
    quiet_tune_output(settings)
    tune_config = tune.TuneConfig(
        metric=SEARCH_METRIC,
        mode=settings.mode,
        scheduler=SCHEDULERS[settings.scheduler](settings),
        search_alg=searcher(settings) if searcher else None,
        num_samples=settings.num_samples,
        max_concurrent_trials=concurrent_trials(settings, cluster_cpus=ray.cluster_resources().get("CPU", 1)),
        # A fresh worker process per trial costs about a second of start-up (imports,
        # actor creation). Reusing workers is safe here because train_fn keeps no
        # state between trials: it builds the model, optimiser and generators from
        # the config, reseeds torch and sets the thread count every time.
        reuse_actors=settings.reuse_actors,
    )
    run_config = tune.RunConfig(
        name=settings.name,
        storage_path=settings.storage.path,  # a local folder as before; on a bucket, the path on its filesystem
        storage_filesystem=settings.storage.ray_filesystem,
        # Only a trial's latest checkpoint is needed (it holds the kept weights as well), but
        # with num_to_keep Tune snapshots the whole experiment whenever a trial has written
        # that many since the last snapshot: per trial, a cost that grows with the number of
        # trials (docs/benchmarks.md, issue 9). So Tune keeps them all, WeightRetention deletes
        # the superseded ones, and a trial restored after a crash continues from its newest
        # complete folder, whatever the last snapshot names (trainables.train_fn).
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        # A trial keeps only its latest checkpoint; finished ones no resume state, and only
        # the weights the analysis can need.
        callbacks=[*logger_callbacks(settings), WeightRetention(mode=settings.mode, keep_best=settings.keep_weights),
                   ForgetFinishedWindows(), *_tracking(settings), *callbacks],
        # 0: no status table per update and no block per started trial (30,837 lines in
        # five minutes of the full grid on a GPU); search.progress prints a line instead.
        verbose=1 if settings.verbose else 0,
    )
    return tune.Tuner(trainable, param_space=param_space(settings), tune_config=tune_config, run_config=run_config)
