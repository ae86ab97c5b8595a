"""Command line: ``python -m search.run --space quick`` runs a search and writes ``trials.csv``.

Everything the user passes (flags, space, data, weights) is checked before
Ray starts; a bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from search.files import read_json
from search.progress import DEFAULT_INTERVAL_S, LiveProgress
from search.spaces import get_space, list_spaces, validate_space
from search.tuner import SCHEDULERS, SEARCHERS, SearchSettings
from trainables import (
    DEFAULTS,
    METRIC_MODES,
    PNEUMONIA,
    Dataset,
    InputError,
    check_input_size,
    get_spec,
    image_size_for,
    load_datasets,
    load_pretrained_state,
    preferred_image_size,
)

DEFAULT_OPTUNA_SAMPLES = 20
# Storage failures while writing results (finished trials stay on disk, so --resume can pick up).
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m search.run", description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", default="quick", help=f"one of {', '.join(list_spaces())}, or a .json space file")
    p.add_argument("--data", default=PNEUMONIA,
                   help=f"image folder (one sub-folder per class), MedMNIST-style .npz, or an embedded set: "
                        f"{PNEUMONIA} (780 chest X-rays of PneumoniaMNIST) or digits (scikit-learn's)")
    p.add_argument("--positive-class", default=None, help="name of the positive class (default: the minority)")
    p.add_argument("--image-size", type=int, default=None,
                   help="pixels for every model (default: 32 for the embedded sets, else 96 for the CNNs, 224 for ImageNet models)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="held out for validation, if the data has no splits")
    p.add_argument("--test-fraction", type=float, default=0.15, help="held out for test, if the data has no splits")
    p.add_argument("--scheduler", choices=list(SCHEDULERS), default="grid", help="grid: run every trial out; asha: stop weak ones early")
    p.add_argument("--grace-period", type=int, default=None,
                   help="with --scheduler asha: epochs before the first rung (default 1)")
    p.add_argument("--reduction-factor", type=float, default=None,
                   help="with --scheduler asha: each rung keeps the best 1/this of its trials (default 4)")
    p.add_argument("--search", choices=list(SEARCHERS), default="grid", help="grid: every combination; optuna: --num-samples draws")
    p.add_argument("--num-samples", type=int, default=None, help=f"trials Optuna draws (default {DEFAULT_OPTUNA_SAMPLES})")
    p.add_argument("--metric", choices=list(METRIC_MODES), default=DEFAULTS["metric"], help="validation metric to optimise")
    p.add_argument("--mode", choices=("max", "min"), default=None, help="default: the metric's natural direction")
    p.add_argument("--min-balanced-accuracy", type=float, default=DEFAULTS["min_balanced_accuracy"],
                   help="degenerate-model guard: trials below it rank after all others (0 disables)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per trial at most (default: the space's)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of every trial, the split and Optuna")
    p.add_argument("--weights-dir", default=None, help="folder of ImageNet weight files (default: the torch hub cache)")
    p.add_argument("--no-pretrained", action="store_true", help="train ImageNet architectures from scratch")
    p.add_argument("--storage-path", default="./results", help="where experiments are written")
    p.add_argument("--name", default=None, help="experiment name (default: <space>-<scheduler>-<search>-<time>)")
    p.add_argument("--address", default=None, help="address of a running Ray cluster (default: start a local Ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU between trials")
    p.add_argument("--max-concurrent-trials", type=int, default=None)
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker dies")
    p.add_argument("--checkpoint-period", type=float, default=60.0,
                   help="seconds of training between a trial's checkpoints, besides its last epoch and ASHA's rungs: "
                        "the most a crash loses (0: every epoch)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted experiment --name: finished trials are kept, unfinished ones "
                        "continue from their last checkpoint")
    p.add_argument("--retry-errored", action="store_true", help="with --resume: retry errored trials too")
    p.add_argument("--dry-run", action="store_true", help="print the trials and dimensions, start nothing")
    p.add_argument("--verbose", action="store_true",
                   help="Tune's own status tables and per-trial blocks instead of one progress line every 15 s")
    p.add_argument("--progress-interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between progress lines")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write Tune's TensorBoard event files in each trial's folder (they cost time at scale)")
    p.add_argument("--storage", default=None,
                   help="with --search optuna: an Optuna storage URL that keeps the study, e.g. sqlite:///study.db "
                        "(open it with optuna-dashboard)")
    p.add_argument("--study-name", default=None, help="with --storage: the study's name (None: the experiment's --name)")
    return p


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """Validate the flags and the space into :class:`SearchSettings`."""
    space = get_space(args.space)
    natural = METRIC_MODES[args.metric]
    if args.mode is not None and args.mode != natural:
        raise InputError(f"--metric {args.metric} is best when {'high' if natural == 'max' else 'low'}; "
                         f"--mode {args.mode} would pick the worst trials (omit --mode)")
    _check_positive("--cpus-per-trial", args.cpus_per_trial, allow_zero=False)
    _check_positive("--gpus-per-trial", args.gpus_per_trial, allow_zero=True)
    if args.gpus_per_trial > 1 and args.gpus_per_trial != int(args.gpus_per_trial):
        raise InputError(f"--gpus-per-trial above 1 must be a whole number; got {args.gpus_per_trial}")
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
    if args.search == "grid" and args.num_samples is not None:
        raise InputError("--num-samples goes with --search optuna; grid search runs every combination once")
    _check_optuna_storage(args)
    if not args.progress_interval > 0:
        raise InputError(f"--progress-interval must be > 0 seconds; got {args.progress_interval}")
    fixed: dict[str, Any] = {
        "seed": args.seed,
        "metric": args.metric,
        "min_balanced_accuracy": args.min_balanced_accuracy,
        "pretrained": not args.no_pretrained,
        "max_epochs": args.max_epochs or space.max_epochs,
    }
    if args.image_size is not None:
        fixed["image_size"] = args.image_size
    fixed = {k: v for k, v in fixed.items() if k not in space.dimensions}
    validate_space(space, fixed)
    name = args.name or f"{space.name}-{args.scheduler}-{args.search}-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.sep in name or name in ("", ".", ".."):
        raise InputError(f"--name must be a plain folder name; got {name!r}")
    storage_path = _writable_folder(args.storage_path)
    folder = storage_path / name
    if args.retry_errored and not args.resume:
        raise InputError("--retry-errored goes with --resume")
    if args.resume and not args.name:
        raise InputError("--resume needs the --name of the experiment to continue")
    if not args.resume and folder.exists() and any(folder.iterdir()):
        raise InputError(f"experiment {str(folder)!r} already exists; pass --resume to continue it or choose another --name")
    settings = SearchSettings(
        space=space,
        name=name,
        storage_path=storage_path,
        scheduler=args.scheduler,
        search=args.search,
        num_samples=(args.num_samples or DEFAULT_OPTUNA_SAMPLES) if args.search == "optuna" else 1,
        mode=natural,
        fixed=fixed,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_failures=args.max_failures,
        max_concurrent_trials=args.max_concurrent_trials,
        seed=args.seed,
        checkpoint_period_s=args.checkpoint_period,
        verbose=args.verbose,
        tensorboard=args.tensorboard,
        optuna_storage=args.storage,
        study_name=args.study_name,
        **asha_options,
    )
    if args.resume:
        _check_same_experiment(settings, data_options(args))
    check_address(args.address)
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


def _check_same_experiment(settings: SearchSettings, data: dict[str, Any]) -> None:
    """Refuse to resume an experiment with another space, search or data than it was started with."""
    from search.results import SETTINGS_FILE

    path = settings.storage_path / settings.name / SETTINGS_FILE
    recorded = read_json(path, missing=f"nothing to resume: {str(path.parent)!r} holds no experiment started by search.run",
                         unreadable=f"cannot read {str(path)!r} to resume")
    current = json.loads(json.dumps(settings.describe(data), default=str))
    for key in ("space", "scheduler", "asha", "search", "num_samples", "fixed", "data"):
        if recorded.get(key) != current.get(key):
            raise InputError(f"cannot resume {settings.name!r} with a different {key}: it was started with "
                             f"{json.dumps(recorded.get(key))}, now {json.dumps(current.get(key))}")


def prepare_inputs(settings: SearchSettings, args: argparse.Namespace) -> tuple[dict[int, Dataset], dict[str, dict], int | None]:
    """Decode the data at every size the space needs and read the ImageNet weights it needs, once."""
    architectures = settings.space.architectures
    options = data_options(args)
    for architecture, size in image_sizes(architectures, options).items():
        check_input_size(architecture, size)
    datasets = load_experiment_data(architectures, options)
    states = {}
    if not args.no_pretrained:
        states = {a: load_pretrained_state(a, args.weights_dir) for a in architectures if get_spec(a).pretrainable}
    return datasets, states, preferred_image_size(options["source"])


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that decide the data, recorded so that the same splits can be rebuilt later."""
    return {
        "source": _source(args.data),
        "positive_class": args.positive_class,
        "image_size": args.image_size,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "seed": args.seed,
        "weights_dir": args.weights_dir,
    }


def _source(data: str | None) -> str | None:
    """What search.json records as the data source: an embedded set's name, None for the digits, else a path."""
    if data in (None, "digits"):
        return None  # as experiments recorded the digits before the pneumonia set became the default
    return data if data == PNEUMONIA else str(Path(data).expanduser().resolve())


def image_sizes(architectures: Iterable[str], data: dict[str, Any]) -> dict[str, int]:
    """Pixels each architecture's images have under these data options (see :func:`data_options`)."""
    source_size = preferred_image_size(data.get("source"))
    return {a: image_size_for(a, override=data.get("image_size"), source_default=source_size) for a in architectures}


def load_experiment_data(architectures: Iterable[str], data: dict[str, Any]) -> dict[int, Dataset]:
    """The data of an experiment, decoded once at every size its architectures need, from its data options."""
    return load_datasets(data.get("source"), image_sizes=set(image_sizes(architectures, data).values()),
                         positive_class=data.get("positive_class"), seed=data.get("seed", DEFAULTS["seed"]),
                         val_fraction=data.get("val_fraction", 0.15), test_fraction=data.get("test_fraction", 0.15))


def run(settings: SearchSettings, *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict],
        source_image_size: int | None, data_options: dict[str, Any], address: str | None = None,
        resume: bool = False, retry_errored: bool = False, progress_interval_s: float = DEFAULT_INTERVAL_S) -> Path:
    """Run (or resume) the search; write ``trials.csv`` and ``best.json`` in the experiment folder and return it."""
    import ray

    from search.results import (
        BEST_FILE,
        SETTINGS_FILE,
        TRIALS_FILE,
        evaluate_best,
        leaderboard,
        trials_frame,
        write_csv_atomically,
        write_json_atomically,
    )
    from search.tuner import build_tuner, restore_tuner

    # Keeping one checkpoint per trial makes Tune snapshot the experiment state at
    # every checkpoint, so that a resumed run never points at a deleted one. Trials
    # checkpoint only where needed (trainables.CheckpointPolicy), but short trials
    # at ASHA's first rung still do so every few seconds, and Tune would warn each time.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        _init_ray(address, verbose=settings.verbose)
    inputs = {"datasets": datasets, "imagenet_states": imagenet_states, "source_image_size": source_image_size}
    folder = settings.storage_path / settings.name
    if resume:
        tuner = restore_tuner(settings, retry_errored=retry_errored, **inputs)
    else:
        write_json_atomically(settings.describe(data_options), folder / SETTINGS_FILE)
        progress = [] if settings.verbose else [LiveProgress(
            varied_keys=[k for k, v in settings.space.dimensions.items() if len(v) > 1],
            max_epochs=settings.max_epochs, mode=settings.mode, interval_s=progress_interval_s)]
        tuner = build_tuner(settings, **inputs, callbacks=progress)
    results = tuner.fit()
    frame = trials_frame(results, max_epochs=settings.max_epochs)
    write_csv_atomically(frame, folder / TRIALS_FILE)
    print(f"\n{len(frame)} trials written to {folder / TRIALS_FILE}")
    if not frame.empty and "ended_by" in frame:
        print("ended by: " + ", ".join(f"{k} {v}" for k, v in frame["ended_by"].value_counts().items()))
    board = leaderboard(frame, mode=settings.mode)
    if not board.empty:
        print(f"\nBest configurations by {settings.fixed.get('metric', DEFAULTS['metric'])} "
              f"(validation, kept state, guard: balanced accuracy >= {settings.fixed.get('min_balanced_accuracy')}):")
        print(board.to_string(float_format=lambda v: f"{v:.4f}"))
    best = evaluate_best(results, frame, datasets, mode=settings.mode)
    if best is not None:
        write_json_atomically(best, folder / BEST_FILE)
        test = best["test"]
        print(f"\nChosen on validation; its test split, touched once: recall {test['test_recall']:.4f}, "
              f"precision {test['test_precision']:.4f}, F1 {test['test_f1']:.4f}, AUC {test['test_auc']:.4f} "
              f"({folder / BEST_FILE})")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.dry_run:
            print(settings.space.describe())
            return 0
        datasets, states, source_size = prepare_inputs(settings, args)
        print(next(iter(datasets.values())).summary())
        run(settings, datasets=datasets, imagenet_states=states, source_image_size=source_size,
            data_options=data_options(args), address=args.address, resume=args.resume,
            retry_errored=args.retry_errored, progress_interval_s=args.progress_interval)
    except InputError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; continue with --resume --name {args.name or '<name>'}", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"{parser.prog}: error: cannot write results ({err.strerror or err}{where}); free space and "
              f"continue with --resume", file=sys.stderr)
        return 1
    return 0


def _init_ray(address: str | None, *, verbose: bool = False) -> None:
    import ray
    from ray.exceptions import AuthenticationError

    # Ray's INFO lines ("Started a local Ray instance.") only with --verbose; warnings always.
    quiet = {} if verbose else {"logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, log_to_driver=False, **quiet)
        else:
            # "local": a Ray of our own. Without it ray.init joins any cluster another user
            # started on this machine with `ray start` (on the shared 2-CPU machine, one
            # with token authentication: three minutes of retries, then a failed run).
            ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                     log_to_driver=False, **quiet)
    except AuthenticationError:
        raise InputError(f"the Ray cluster at {address!r} uses token authentication and no token is set here: "
                         "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token") from None
    except (ConnectionError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not address:
            raise InputError(f"cannot start a local Ray: {reason}") from None
        # An unreachable port was ruled out by check_address; a refused token is the usual cause now.
        token = "the token set here was refused" if _has_auth_token() else "no token is set here"
        raise InputError(f"cannot connect to the Ray cluster at {address!r} ({reason}); if it uses token "
                         f"authentication, {token}: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token") from None


def _has_auth_token() -> bool:
    """Whether this process would present a Ray auth token (env, token file, or ~/.ray/auth_token)."""
    default = Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or default.exists())


def check_address(address: str | None, *, timeout_s: float = 5.0) -> None:
    """A Ray address that answers: ``host:port`` or ``ray://host:port`` reachable over TCP, or ``auto``.

    ray.init would otherwise retry an unreachable address for minutes.
    """
    if address is None or address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--address {address!r} is not host:port (e.g. 10.0.0.5:6379, ray://head:10001 or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(f"cannot reach a Ray cluster at {address!r} ({reason}); is `ray start --head` running "
                         f"there, and is the port open to this machine?") from None


def _check_positive(flag: str, value: float, *, allow_zero: bool) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}; got {value}")


def _writable_folder(path: str) -> Path:
    """The absolute storage path, checked (not created: a dry run writes nothing) for writing."""
    folder = Path(path).expanduser().resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--storage-path {path!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK):
        raise InputError(f"--storage-path {path!r} is not writable")
    return folder


if __name__ == "__main__":
    sys.exit(main())
