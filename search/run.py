"""Command line: ``python -m search.run --space quick`` runs a search and writes ``trials.csv``.

Everything the user passes (flags, space, data, weights, resources) is checked
before Ray starts; a bad input is one line on stderr and exit status 2. A
search whose every trial errored exits 1; Ctrl-C exits 130 and prints the
command that continues the experiment.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from search.cli import OneLineParser
from search.comparison import TIE_RULES
from search.connect import check_address, init_ray, limit_malloc_arenas
from search.data_record import DATA_FILE, check_same_data, data_record, image_sizes, load_experiment_data
from search.files import read_json
from search.interrupt import (
    EXIT_INTERRUPTED,
    SearchInterrupted,
    catch_sigint,
    hold_sigint,
    raise_if_interrupted,
    resume_command,
    saved_trial_count,
    tune_sigint,
    unfinished_trials,
)
from search.preflight import (
    check_local_resources,
    cluster_shortfall,
    confirm_trial_count,
    local_cpus,
    local_gpus,
)
from search.progress import DEFAULT_INTERVAL_S, LiveProgress
from search.resources import describe_shares, largest_gpu_request, local_gpu_mib
from search.spaces import Space, get_space, list_spaces
from search.tuner import SCHEDULERS, SEARCHERS, SearchSettings
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
from trainables.data import AUTO_FOLDS, FEW_VALIDATION_POSITIVES, fold_indices

DEFAULT_OPTUNA_SAMPLES = 20
# Storage failures while writing results (finished trials stay on disk, so --resume can pick up).
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO}
NAME_MAX = 255  # bytes in one folder name on Linux and macOS file systems
# Config keys set by a flag: a bad value is reported against the flag, not the key.
FLAGS = {"seed": "--seed", "min_balanced_accuracy": "--min-balanced-accuracy", "max_epochs": "--max-epochs",
         "image_size": "--image-size", "metric": "--metric", "pretrained": "--no-pretrained",
         "target_recall": "--target-recall", "folds": "--folds", "seeds": "--seeds"}


def _folds_flag(text: str) -> int | str:
    """--folds: an integer (checked with the other settings), or auto."""
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or {AUTO}; got {text!r}") from None


class TrialsFailed(Exception):
    """Every trial of the search errored; ``trials.csv`` holds their errors."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.run", description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", default="quick", help=f"one of {', '.join(list_spaces())}, or a .json space file")
    p.add_argument("--data", default=PNEUMONIA,
                   help=f"image folder (one sub-folder per class), MedMNIST-style .npz, or an embedded set: "
                        f"{PNEUMONIA} (780 chest X-rays of PneumoniaMNIST) or digits (scikit-learn's)")
    p.add_argument("--positive-class", default=None, help="name of the positive class (default: the minority)")
    p.add_argument("--dedup", action="store_true",
                   help="drop identical and near-identical images (perceptual hash) before splitting; the start "
                        "of a run counts them either way")
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
    p.add_argument("--metric", choices=list(METRIC_MODES), default=DEFAULTS["metric"],
                   help="validation metric to optimise. The default judges the model where it ships: specificity at "
                        "its operating threshold. val_recall (recall at 0.5, the study's) reproduces the study but "
                        "rewards models biased towards the positive class and falls as a model trains, which "
                        "breaks ASHA")
    p.add_argument("--mode", choices=("max", "min"), default=None, help="default: the metric's natural direction")
    p.add_argument("--target-recall", type=float, default=DEFAULTS["target_recall"],
                   help="recall of the operating point: the threshold delivered with the model is the highest whose "
                        "expected recall on new positives reaches it (set on the validation positives, split conformal); "
                        "val_specificity_at_recall and val_precision_at_recall rank at it")
    p.add_argument("--min-balanced-accuracy", type=float, default=DEFAULTS["min_balanced_accuracy"],
                   help="degenerate-model guard: trials below it rank after all others (0 disables)")
    p.add_argument("--folds", type=_folds_flag, default=AUTO,
                   help="k > 1: each trial trains k models on stratified folds of the train split and is judged on "
                        "their mean; the chosen configuration delivers their mean probability, whose threshold is set "
                        "on the validation split (which no fold model trains on). auto (default): "
                        f"{AUTO_FOLDS} when validation holds under {FEW_VALIDATION_POSITIVES} positives, else 1")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per trial at most (default: the space's)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of every trial, the split and Optuna")
    p.add_argument("--seeds", type=int, default=None,
                   help="N > 1: each trial trains every fold's model under N seeds (--seed, --seed + 1, ...: their own "
                        "weights, order and augmentation, the same folds), is ranked on their mean with its standard "
                        "error, and delivers their mean (default 1; on --resume, the experiment's)")
    p.add_argument("--weights-dir", default=None, help="folder of ImageNet weight files (default: the torch hub cache)")
    p.add_argument("--no-pretrained", action="store_true", help="train ImageNet architectures from scratch")
    p.add_argument("--storage-path", default="./results", help="where experiments are written")
    p.add_argument("--name", default=None, help="experiment name (default: <space>-<scheduler>-<search>-<time>)")
    p.add_argument("--address", default=None, help="address of a running Ray cluster (default: start a local Ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", default="0", metavar="SHARE",
                   help="GPU share of each trial (fractions share a GPU), or auto: each architecture's share from its "
                        "measured memory, so that trials fill the card without exceeding it (docs/benchmarks.md)")
    p.add_argument("--gpu-memory-gib", type=float, default=None,
                   help="with --gpus-per-trial auto: one GPU's memory (default: this machine's GPU)")
    p.add_argument("--max-concurrent-trials", type=int, default=None)
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker dies")
    p.add_argument("--checkpoint-period", type=float, default=60.0,
                   help="seconds of training between a trial's checkpoints, besides its last epoch and ASHA's rungs: "
                        "the most a crash loses (0: every epoch)")
    p.add_argument("--keep-weights", type=int, default=10,
                   help="finished trials whose kept weights stay on disk, besides the best of each architecture x "
                        "strategy x augmentation; the others keep their metrics only")
    p.add_argument("--ensemble-top", type=int, default=1,
                   help="also deliver the mean probability of the best N trials' kept models, with its own test "
                        "report beside the best trial's (1: the best trial alone)")
    p.add_argument("--on-ties", choices=list(TIE_RULES), default="cheapest",
                   help="which of the trials statistically tied with the best to deliver (paired bootstrap on the "
                        "held-out images): cheapest, the fewest parameters then epochs; best, the leaderboard's first")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted experiment --name: finished trials are kept, unfinished ones "
                        "continue from their last checkpoint")
    p.add_argument("--retry-errored", action="store_true", help="with --resume: retry errored trials too")
    p.add_argument("--dry-run", action="store_true", help="print the trials and dimensions, start nothing")
    p.add_argument("--yes", action="store_true",
                   help="run a space of more than 2,000 trials without asking (needed when stdin is not a terminal)")
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
    storage_path = _writable_folder(storage_folder(args.storage_path), flag_value=args.storage_path)
    folder = storage_path / name
    if args.retry_errored and not args.resume:
        raise InputError("--retry-errored goes with --resume")
    if args.resume and not args.name:
        raise InputError("--resume needs the --name of the experiment to continue")
    if not args.resume and folder.exists() and any(folder.iterdir()):
        raise InputError(f"experiment {str(folder)!r} already exists; pass --resume to continue it or choose another --name")
    if args.resume and fixed.get("folds") == AUTO:  # continue as it was started: auto chose from the same data
        fixed["folds"] = (_recorded_settings(folder).get("fixed") or {}).get("folds", DEFAULTS["folds"])
    if args.resume and args.seeds is None:
        fixed["seeds"] = (_recorded_settings(folder).get("fixed") or {}).get("seeds", DEFAULTS["seeds"])
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
        gpus_per_trial=gpus,
        gpu_memory_mib=gpu_memory_mib,
        max_failures=args.max_failures,
        max_concurrent_trials=args.max_concurrent_trials,
        seed=args.seed,
        checkpoint_period_s=args.checkpoint_period,
        keep_weights=args.keep_weights,
        ensemble_top=args.ensemble_top,
        on_ties=args.on_ties,
        verbose=args.verbose,
        tensorboard=args.tensorboard,
        optuna_storage=args.storage,
        study_name=args.study_name,
        **asha_options,
    )
    if args.resume:
        _check_same_experiment(settings, data_options(args, space))
    check_address(args.address)
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


def _recorded_settings(folder: Path) -> dict[str, Any]:
    """search.json of the experiment in ``folder``; InputError when there is none to resume."""
    from search.results import SETTINGS_FILE

    path = folder / SETTINGS_FILE
    return read_json(path, missing=f"nothing to resume: {str(folder)!r} holds no experiment started by search.run",
                     unreadable=f"cannot read {str(path)!r} to resume")


def _check_same_experiment(settings: SearchSettings, data: dict[str, Any]) -> None:
    """Refuse to resume an experiment with another space, search or data than it was started with."""
    recorded = _recorded_settings(settings.storage_path / settings.name)
    current = json.loads(json.dumps(settings.describe(data), default=str))
    for key in ("space", "scheduler", "asha", "search", "num_samples", "fixed", "data"):
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


def run(settings: SearchSettings, *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict],
        source_image_size: int | None, data_options: dict[str, Any], address: str | None = None,
        resume: bool = False, retry_errored: bool = False, progress_interval_s: float = DEFAULT_INTERVAL_S,
        command: str | None = None) -> Path:
    """Run (or resume) the search; write ``trials.csv`` and ``best.json`` in the experiment folder and return it.

    ``command`` is the command line that ran it, recorded in ``best.json`` (and the exported card).
    """
    import ray

    from search.comparison import COMPARISONS_FILE, compare, comparison_lines, held_out_by_trial, tie_marks
    from search.results import (
        OBJECTIVE,
        SETTINGS_FILE,
        TRIALS_FILE,
        guard_in_words,
        leaderboard,
        rank_trials,
        trials_frame,
        write_csv_atomically,
        write_json_atomically,
    )
    from search.deliverable import deliver, delivery_lines
    from trainables.classifier import BEST_FILE
    from search.tuner import build_tuner, restore_tuner

    settings = with_folds_decided(settings, datasets)  # as search.json records it, and the trials take it
    if not ray.is_initialized():
        limit_malloc_arenas()  # before Ray's threads start
        with hold_sigint():  # a Ctrl-C while Ray starts takes effect once it has started
            init_ray(address, verbose=settings.verbose)
        _check_started_ray_fits(settings, address)
    inputs = {"datasets": datasets, "imagenet_states": imagenet_states, "source_image_size": source_image_size}
    folder = settings.storage_path / settings.name
    if resume:
        path = folder / DATA_FILE  # absent for experiments started before it was recorded
        check_same_data(datasets, read_json(path, missing="", unreadable=f"cannot read {str(path)!r}")
                        if path.exists() else None)
        tuner = restore_tuner(settings, retry_errored=retry_errored, **inputs)
    else:
        write_json_atomically(settings.describe(data_options), folder / SETTINGS_FILE)
        record = data_record(datasets)
        if record is not None:
            write_json_atomically(record, folder / DATA_FILE)
        progress = [] if settings.verbose else [LiveProgress(
            varied_keys=[k for k, v in settings.space.dimensions.items() if len(v) > 1],
            max_epochs=settings.max_epochs, mode=settings.mode, interval_s=progress_interval_s)]
        tuner = build_tuner(settings, **inputs, callbacks=progress)
    raise_if_interrupted()  # a Ctrl-C whose KeyboardInterrupt some code caught: not into Tune with it
    with tune_sigint() as tune_stop:
        results = tuner.fit()
    raise_if_interrupted()  # one that reached our handler inside fit (before Tune's, or a second one) and was caught
    expected = trial_count(settings)
    unfinished = unfinished_trials(folder, expected=expected)
    # Tune caught a SIGINT, saved the experiment and stopped the trials; or it caught one after the last trial
    # ended (writing its state, calling the callbacks' on_experiment_end), and returned as if nothing happened.
    if unfinished or tune_stop.received:
        raise SearchInterrupted(unfinished, max(expected, len(results)))
    frame = trials_frame(results, max_epochs=settings.max_epochs)
    comparisons = None
    if not frame.empty and OBJECTIVE in frame:
        comparisons = compare(rank_trials(frame, mode=settings.mode), held_out_by_trial(results, frame),
                              metric=settings.fixed.get("metric", DEFAULTS["metric"]), mode=settings.mode,
                              target_recall=settings.fixed.get("target_recall", DEFAULTS["target_recall"]),
                              rule=settings.on_ties, seed=settings.seed)
        frame = frame.assign(tie=tie_marks(frame, comparisons))
        write_json_atomically(comparisons, folder / COMPARISONS_FILE)
    write_csv_atomically(frame, folder / TRIALS_FILE)
    print(f"\n{len(frame)} trials written to {folder / TRIALS_FILE}")
    if not frame.empty and "ended_by" in frame:
        print("ended by: " + ", ".join(f"{k} {v}" for k, v in frame["ended_by"].value_counts().items()))
    if not frame.empty and (frame["ended_by"] == "error").all():
        raise TrialsFailed(f"all {len(frame)} trials failed, the first with {frame['error'].iloc[0]} "
                           f"(every error is in {folder / TRIALS_FILE})")
    board = leaderboard(frame, mode=settings.mode)
    if not board.empty:
        metric = settings.fixed.get("metric", DEFAULTS["metric"])
        guard = guard_in_words(metric, settings.fixed.get("min_balanced_accuracy", DEFAULTS["min_balanced_accuracy"]))
        over = ["folds"] * (settings.fixed.get("folds", 1) > 1) + ["seeds"] * (settings.fixed.get("seeds", 1) > 1)
        print(f"\nBest configurations by {metric} "
              f"({'mean over ' + ' x '.join(over) if over else 'validation'}, kept state; {guard}):")
        print(board.to_string(float_format=lambda v: f"{v:.4f}"))
    if comparisons is not None:
        print("\n" + "\n".join(comparison_lines(comparisons)))
    best = deliver(results, frame, datasets, mode=settings.mode, folder=folder, ensemble_top=settings.ensemble_top,
                   first=None if comparisons is None else comparisons["chosen"])
    if best is not None:
        choice = None if comparisons is None else {k: comparisons[k] for k in ("best", "tied_with_best", "compared",
                                                                                 "rule", "rule_words", "chosen")}
        write_json_atomically({**best, "choice": choice, "command": command}, folder / BEST_FILE)
        print("\n" + "\n".join(delivery_lines(best, folder / BEST_FILE)))
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with catch_sigint():
        return _main(parser, args, command=shlex.join(["python", "-m", "search.run",
                                                       *(sys.argv[1:] if argv is None else argv)]))


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace, *, command: str | None = None) -> int:
    settings = None
    try:
        settings = settings_from_args(args)
        if args.dry_run:
            print(settings.space.describe())
            return 0
        if not args.resume:  # a resumed experiment was confirmed when it started
            confirm_trial_count(trial_count(settings), what=f"space {settings.space.name!r}", yes=args.yes)
        _create_folder(settings.storage_path, flag_value=args.storage_path)
        if args.address:
            print(f"{parser.prog}: note: with --address, --storage-path {str(settings.storage_path)!r} must be one "
                  "folder shared by every node of the cluster (a network mount at the same path): trials write "
                  "their checkpoints there", file=sys.stderr)
        datasets, states, source_size = prepare_inputs(settings, args)
        dataset, decided = next(iter(datasets.values())), with_folds_decided(settings, datasets)
        folds = decided.fixed.get("folds", DEFAULTS["folds"])
        print(dataset.summary(folds=folds))
        if settings.fixed.get("folds") == AUTO and folds > 1:
            print(f"note: validation holds {dataset.val.class_counts()[1]} positive images (under "
                  f"{FEW_VALIDATION_POSITIVES}), so each trial is judged by {folds}-fold cross-validation over "
                  f"the train split, and validation only sets the delivered ensemble's threshold (--folds auto; "
                  f"about {folds - 1}x the training of --folds 1, which judges on the validation split alone)")
        if settings.gpus_per_trial == AUTO:
            print(describe_shares(decided.space.dimensions, decided.fixed, gpu_mib=settings.gpu_memory_mib,
                                  source_image_size=source_size))
        run(decided, datasets=datasets, imagenet_states=states, source_image_size=source_size,
            data_options=data_options(args, settings.space), address=args.address, resume=args.resume,
            retry_errored=args.retry_errored, progress_interval_s=args.progress_interval, command=command)
        raise_if_interrupted()  # whatever caught the KeyboardInterrupt, a Ctrl-C never ends in status 0
    except InputError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except TrialsFailed as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SearchInterrupted) as err:
        print(f"{parser.prog}: {_interrupted(parser, args, settings, err)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"{parser.prog}: error: cannot write results ({err.strerror or err}{where}); free space and "
              f"continue with --resume", file=sys.stderr)
        return 1
    return 0


def trial_count(settings: SearchSettings) -> int:
    """Trials the search launches: the grid's product, or Optuna's samples."""
    return settings.space.num_grid_trials if settings.search == "grid" else settings.num_samples


def _interrupted(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: SearchSettings | None,
                 err: BaseException) -> str:
    """What a Ctrl-C leaves, in one line: the command that continues the experiment, or that nothing was saved."""
    from ray import tune

    folder = settings.storage_path / settings.name if settings is not None else None
    # A new experiment is resumable once Tune has saved a trial; a resumed one was resumable before this run.
    if folder is not None and (tune.Tuner.can_restore(folder) if args.resume else saved_trial_count(folder) > 0):
        command = resume_command(parser, args, name=settings.name, storage_path=settings.storage_path)
        counts = f" with {err.unfinished} of {err.total} trials unfinished" if isinstance(err, SearchInterrupted) else ""
        return f"interrupted{counts}; the experiment is saved in {str(folder)!r}; continue it with: {command}"
    if folder is not None and not args.resume and folder.exists():
        # Only this run wrote there (a new experiment needs an empty folder), and Tune saved no trial:
        # without the folder the same command starts afresh, where --resume would be refused.
        shutil.rmtree(folder, ignore_errors=True)
    return "interrupted before any trial started; nothing was saved"


def _check_started_ray_fits(settings: SearchSettings, address: str | None) -> None:
    """Compare one trial's resources with the nodes Ray reports: an error locally, a note on a cluster."""
    import ray

    if address is None:  # Ray may see fewer CPUs than the affinity mask (a container's CPU quota)
        resources = ray.cluster_resources()
        check_local_resources(cpus_per_trial=settings.cpus_per_trial,
                              gpus_per_trial=largest_gpu_request(settings.gpus_per_trial),
                              cpus=int(resources.get("CPU", 0)), gpus=int(resources.get("GPU", 0)))
        return
    note = cluster_shortfall(ray.nodes(), cpus_per_trial=settings.cpus_per_trial,
                             gpus_per_trial=largest_gpu_request(settings.gpus_per_trial), address=address)
    if note:
        print(f"python -m search.run: note: {note}", file=sys.stderr)


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


def storage_folder(value: str) -> Path:
    """``--storage-path`` as an absolute local folder: a path or a ``file://`` URI; other URIs are refused."""
    if "://" in value:
        uri = urlparse(value)
        if uri.scheme != "file" or uri.netloc not in ("", "localhost"):
            raise InputError(f"--storage-path {value!r}: URIs other than file:// are not supported; mount the "
                             "bucket (e.g. with s3fs or gcsfuse) and pass the mount's path")
        value = unquote(uri.path)
    return Path(value).expanduser().resolve()


def _writable_folder(folder: Path, *, flag_value: str) -> Path:
    """``folder``, checked (not created: a dry run writes nothing) for writing."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--storage-path {flag_value!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK):
        raise InputError(f"--storage-path {flag_value!r} is not writable")
    return folder


def _create_folder(folder: Path, *, flag_value: str) -> None:
    """Create the storage folder and write a file there, before Ray starts: some folders refuse only then (/proc)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--storage-path {flag_value!r} cannot be created: {err.strerror or err}") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise InputError(f"--storage-path {flag_value!r} is not writable: {err.strerror or err}") from None


if __name__ == "__main__":
    sys.exit(main())
