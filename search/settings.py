"""From flags to settings: every check of what the user passed, before Ray starts, and the inputs they name.

A bad value is one line (``InputError``) naming the flag; nothing here
starts Ray or a trial.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from search.connect import check_address
from search.data_record import image_sizes, load_experiment_data
from search.files import read_json
from search.flags import DEFAULT_OPTUNA_SAMPLES
from search.preflight import (
    check_local_resources,
    local_cpus,
    local_gpus,
)
from search.resources import largest_gpu_request, local_gpu_mib
from search.spaces import Space, get_space
from search.tuner import SearchSettings
from trainables import (
    AUTO,
    DEFAULTS,
    METRIC_MODES,
    PNEUMONIA,
    Dataset,
    InputError,
    check_input_size,
    get_spec,
    load_pretrained_state,
    preferred_image_size,
)
from trainables.config import check_value
from trainables.splits import fold_indices
from trainables.storage import Storage, check_reachable, first_line, is_remote, local_path, locate

NAME_MAX = 255  # bytes in one folder name on Linux and macOS file systems
# Config keys set by a flag: a bad value is reported against the flag, not the key.
FLAGS = {"seed": "--seed", "min_balanced_accuracy": "--min-balanced-accuracy", "max_epochs": "--max-epochs",
         "image_size": "--image-size", "metric": "--metric", "pretrained": "--no-pretrained",
         "target_recall": "--target-recall", "folds": "--folds", "seeds": "--seeds"}


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """Validate the flags and the space into :class:`SearchSettings`."""
    space = get_space(args.space)
    natural = METRIC_MODES[args.metric]
    if args.mode is not None and args.mode != natural:
        raise InputError(f"--metric {args.metric} is best when {'high' if natural == 'max' else 'low'}; "
                         f"--mode {args.mode} would pick the worst trials (omit --mode)")
    _check_positive("--cpus-per-trial", args.cpus_per_trial, allow_zero=False)
    gpus = _gpu_share(args.gpus_per_trial)
    gpu_memory_mib = _gpu_memory_mib(gpus, args.gpu_memory_gib)
    for flag, value in (("--max-epochs", args.max_epochs), ("--num-samples", args.num_samples),
                        ("--max-concurrent-trials", args.max_concurrent_trials)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be >= 1; got {value}")
    asha_options = {k: v for k, v in (("grace_period", args.grace_period), ("reduction_factor", args.reduction_factor))
                    if v is not None}
    if asha_options and args.scheduler != "asha":
        raise InputError(f"--{next(iter(asha_options)).replace('_', '-')} goes with --scheduler asha")
    if args.grace_period is not None and not 1 <= args.grace_period <= (args.max_epochs or space.max_epochs):
        raise InputError(f"--grace-period must be between 1 and the epoch budget; got {args.grace_period}")
    if args.reduction_factor is not None and not args.reduction_factor > 1:
        raise InputError(f"--reduction-factor must be above 1; got {args.reduction_factor}")
    if args.max_failures < 0:
        raise InputError(f"--max-failures must be >= 0; got {args.max_failures}")
    _check_positive("--checkpoint-period", args.checkpoint_period, allow_zero=True)
    if args.keep_weights < 1:
        raise InputError(f"--keep-weights must be >= 1 (the chosen trial's weights); got {args.keep_weights}")
    if not 1 <= args.ensemble_top <= args.keep_weights:
        raise InputError(f"--ensemble-top must be between 1 and --keep-weights ({args.keep_weights}), whose weights "
                         f"stay on disk; got {args.ensemble_top}")
    if args.search == "grid" and space.distributions:
        key, dist = next(iter(space.distributions.items()))
        raise InputError(f"space {space.name!r}: {key!r} is a distribution ({dist}), which grid search cannot "
                         "enumerate; pass --search optuna, or give it as a list of values")
    if args.search == "grid" and args.num_samples is not None:
        raise InputError("--num-samples goes with --search optuna; grid search runs every combination once")
    _check_optuna_storage(args)
    if not args.progress_interval > 0:
        raise InputError(f"--progress-interval must be > 0 seconds; got {args.progress_interval}")
    fixed: dict[str, Any] = {
        "seed": args.seed,
        "metric": args.metric,
        "min_balanced_accuracy": args.min_balanced_accuracy,
        "target_recall": args.target_recall,
        "pretrained": not args.no_pretrained,
        "max_epochs": args.max_epochs or space.max_epochs,
        "folds": args.folds,
        "seeds": DEFAULTS["seeds"] if args.seeds is None else args.seeds,
    }
    if args.image_size is not None:
        fixed["image_size"] = args.image_size
        if "image_size" in space.dimensions:
            raise InputError(f"--image-size {args.image_size} conflicts with space {space.name!r}, which varies "
                             f"image_size ({', '.join(map(str, space.dimensions['image_size']))}); drop one of them")
    for key, value in fixed.items():
        if not (key == "folds" and value == AUTO):  # decided from the data (Dataset.folds_for)
            check_value(key, value, name=FLAGS[key])
    fixed = {k: v for k, v in fixed.items() if k not in space.dimensions}
    name = args.name or f"{space.name}-{args.scheduler}-{args.search}-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.sep in name or name in ("", ".", ".."):
        raise InputError(f"--name must be a plain folder name; got {name!r}")
    if len(name.encode()) > NAME_MAX:
        raise InputError(f"--name is {len(name)} characters long; a folder name holds at most {NAME_MAX} bytes")
    storage_path = _checked_storage(storage_folder(args.storage_path), flag_value=args.storage_path)
    folder = locate(storage_path) / name
    if args.retry_errored and not args.resume:
        raise InputError("--retry-errored goes with --resume")
    if args.resume and not args.name:
        raise InputError("--resume needs the --name of the experiment to continue")
    if not args.resume and folder.names():
        raise InputError(f"experiment {str(folder)!r} already exists; pass --resume to continue it or choose another --name")
    if args.resume and (fixed.get("folds") == AUTO or args.seeds is None):  # continue as it was started
        recorded = _recorded_settings(folder).get("fixed") or {}
        if fixed.get("folds") == AUTO:  # auto chose from the same data
            fixed["folds"] = recorded.get("folds", DEFAULTS["folds"])
        if args.seeds is None:
            fixed["seeds"] = recorded.get("seeds", DEFAULTS["seeds"])
    settings = SearchSettings(
        space=space,
        name=name,
        storage_path=storage_path,
        scheduler=args.scheduler,
        search=args.search,
        # Optuna never runs a configuration twice (search.searchers): at most the space's combinations.
        num_samples=min(requested_samples(args), space.num_grid_trials) if args.search == "optuna" else 1,
        mode=natural,
        fixed=fixed,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=gpus,
        gpu_memory_mib=gpu_memory_mib,
        max_failures=args.max_failures,
        max_concurrent_trials=args.max_concurrent_trials,
        time_budget_s=args.time_budget,
        seed=args.seed,
        checkpoint_period_s=args.checkpoint_period,
        keep_weights=args.keep_weights,
        ensemble_top=args.ensemble_top,
        on_ties=args.on_ties,
        verbose=args.verbose,
        tensorboard=args.tensorboard,
        optuna_storage=args.storage,
        study_name=args.study_name,
        mlflow_uri=args.mlflow,
        **asha_options,
    )
    if args.resume:
        _check_same_experiment(settings, data_options(args, space))
    check_address(args.address)
    if args.mlflow is not None:  # a tracking server that does not answer: before any trial starts
        from search.tracking import check_tracking_uri  # imports mlflow (1.6 s): only with --mlflow

        check_tracking_uri(args.mlflow)
    if args.address is None:
        check_local_resources(cpus_per_trial=args.cpus_per_trial, gpus_per_trial=largest_gpu_request(gpus),
                              cpus=local_cpus(), gpus=local_gpus())
    return settings


def _check_optuna_storage(args: argparse.Namespace) -> None:
    """--storage is an Optuna storage URL and goes with --search optuna; --study-name goes with --storage."""
    if args.study_name is not None and args.storage is None:
        raise InputError("--study-name goes with --storage")
    if args.storage is None:
        return
    if args.search != "optuna":
        raise InputError("--storage goes with --search optuna (it keeps the Optuna study)")
    if "://" not in args.storage:
        raise InputError(f"--storage {args.storage!r} is not a database URL; e.g. sqlite:///study.db "
                         "(a file study.db in this folder) or postgresql://user@host/db")
    if args.storage.startswith("sqlite:///"):  # SQLite creates the file, not its folder
        folder = Path(args.storage.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir():
            raise InputError(f"--storage {args.storage!r}: folder {str(folder)!r} does not exist")


def _recorded_settings(folder: Storage) -> dict[str, Any]:
    """search.json of the experiment in ``folder``; InputError when there is none to resume."""
    from search.results import SETTINGS_FILE

    path = folder / SETTINGS_FILE
    return read_json(path, missing=f"nothing to resume: {str(folder)!r} holds no experiment started by search.run",
                     unreadable=f"cannot read {str(path)!r} to resume")


def _check_same_experiment(settings: SearchSettings, data: dict[str, Any]) -> None:
    """Refuse to resume an experiment with another space, search or data than it was started with."""
    recorded = _recorded_settings(settings.experiment)
    current = json.loads(json.dumps(settings.describe(data), default=str))
    for key in ("space", "scheduler", "asha", "search", "num_samples", "fixed", "data", "mlflow"):
        if recorded.get(key) != current.get(key):
            raise InputError(f"cannot resume {settings.name!r} with a different {key}: it was started with "
                             f"{json.dumps(recorded.get(key))}, now {json.dumps(current.get(key))}")


def prepare_inputs(settings: SearchSettings, args: argparse.Namespace) -> tuple[dict[int, Dataset], dict[str, dict], int | None]:
    """Decode the data at every size the space can produce and read the ImageNet weights it needs, once."""
    architectures = settings.space.architectures
    options = data_options(args, settings.space)
    pairs = {(architecture, size) for (architecture, _), size in image_sizes(architectures, options).items()}
    for architecture, size in sorted(pairs):  # every architecture x size a trial can have
        check_input_size(architecture, size)
    datasets = load_experiment_data(architectures, options)
    states = {}
    if not args.no_pretrained:
        states = {a: load_pretrained_state(a, args.weights_dir) for a in architectures if get_spec(a).pretrainable}
    return datasets, states, preferred_image_size(options["source"])


def with_folds_decided(settings: SearchSettings, datasets: dict[int, Dataset]) -> SearchSettings:
    """``settings`` whose ``folds`` is a number: ``--folds auto`` decided from the data (Dataset.folds_for).

    InputError when the data has too few images of a class for that many folds: called before Ray starts.
    """
    if "folds" not in settings.fixed:
        return settings
    dataset = next(iter(datasets.values()))
    folds = dataset.folds_for(settings.fixed["folds"])
    if folds > 1:
        fold_indices(dataset.train.labels, folds)
    return dataclasses.replace(settings, fixed={**settings.fixed, "folds": folds})


def data_options(args: argparse.Namespace, space: Space | None = None) -> dict[str, Any]:
    """The flags that decide the data, recorded so that the same splits can be rebuilt later.

    ``image_size`` is ``--image-size``, or the list of sizes when ``space``
    varies it: the sizes to decode, for this run and for ``analysis``.
    """
    varied = space is not None and "image_size" in space.dimensions
    return {
        "source": _source(args.data),
        "positive_class": args.positive_class,
        "image_size": list(space.dimensions["image_size"]) if varied else args.image_size,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "seed": args.seed,
        "weights_dir": args.weights_dir,
        "dedup": args.dedup,
    }


def _source(data: str | None) -> str | None:
    """What search.json records as the data source: an embedded set's name, None for the digits, else a path."""
    if data in (None, "digits"):
        return None  # as experiments recorded the digits before the pneumonia set became the default
    return data if data == PNEUMONIA else str(Path(data).expanduser().resolve())


def requested_samples(args: argparse.Namespace) -> int:
    """The Optuna trials the flags ask for."""
    return args.num_samples or DEFAULT_OPTUNA_SAMPLES


def trial_count(settings: SearchSettings) -> int:
    """Trials the search launches: the grid's product, or Optuna's samples."""
    return settings.space.num_grid_trials if settings.search == "grid" else settings.num_samples


def _gpu_share(text: str) -> float | str:
    """``--gpus-per-trial``: ``auto``, a fraction of a GPU, or a whole number of GPUs."""
    if text == AUTO:
        return AUTO
    try:
        share = float(text)
    except ValueError:
        raise InputError(f"--gpus-per-trial must be a number or auto; got {text!r}") from None
    _check_positive("--gpus-per-trial", share, allow_zero=True)
    if share > 1 and share != int(share):
        raise InputError(f"--gpus-per-trial above 1 must be a whole number; got {share}")
    return share


def _gpu_memory_mib(gpus: float | str, gpu_memory_gib: float | None) -> float | None:
    """One GPU's memory for ``--gpus-per-trial auto``: the flag's, else this machine's GPU's."""
    if gpu_memory_gib is not None:
        if gpus != AUTO:
            raise InputError("--gpu-memory-gib goes with --gpus-per-trial auto")
        _check_positive("--gpu-memory-gib", gpu_memory_gib, allow_zero=False)
        return gpu_memory_gib * 1024
    if gpus != AUTO:
        return None
    found = local_gpu_mib()
    if found is None:
        raise InputError("--gpus-per-trial auto needs the GPU's memory: run where a GPU is visible, or pass "
                         "--gpu-memory-gib (the memory of one GPU of the cluster)")
    return found


def _check_positive(flag: str, value: float, *, allow_zero: bool) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}; got {value}")


def storage_folder(value: str) -> Path | str:
    """``--storage-path``: an absolute local folder (a path or a ``file://`` URI), or a URI that pyarrow reads
    (``s3://bucket/path``, ``gs://...``, its query included), kept as given (trainables.storage).

    InputError naming the value and pyarrow's reason when it makes no filesystem of it (an unknown scheme).
    """
    if not is_remote(value):
        try:
            return local_path(value)
        except ValueError as err:
            raise InputError(f"--storage-path {value!r}: {err}") from None
    try:
        storage = locate(value)
    except (ValueError, OSError) as err:
        raise InputError(f"--storage-path {value!r}: {first_line(err)}") from None
    if not storage.path:
        raise InputError(f"--storage-path {value!r} names no bucket; e.g. s3://my-bucket/results")
    return value


def _checked_storage(folder: Path | str, *, flag_value: str) -> Path | str:
    """``folder`` checked without writing (a dry run writes nothing): a local one for writing, a bucket for reading."""
    if isinstance(folder, Path):
        return _writable_folder(folder, flag_value=flag_value)
    try:
        check_reachable(locate(folder))
    except OSError as err:
        raise InputError(f"--storage-path {flag_value!r} cannot be reached: {first_line(err)}") from None
    return folder


def _writable_folder(folder: Path, *, flag_value: str) -> Path:
    """``folder``, checked (not created: a dry run writes nothing) for writing."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--storage-path {flag_value!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK):
        raise InputError(f"--storage-path {flag_value!r} is not writable")
    return folder
