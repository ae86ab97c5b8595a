"""Command line: ``python -m search.run --space quick`` runs a search and writes ``trials.csv``.

Everything the user passes (flags, space, data, weights, resources) is checked
before Ray starts; a bad input is one line on stderr and exit status 2. A
search whose every trial errored exits 1; Ctrl-C exits 130 and prints the
command that continues the experiment.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import sys
from collections.abc import Sequence

from search.flags import build_parser
from search.interrupt import (
    SearchInterrupted,
    catch_sigint,
    exit_status,
    raise_if_interrupted,
    resume_command,
    saved_trial_count,
    stopped_in_words,
)
from search.launch import TrialsFailed, run
from search.preflight import confirm_trial_count
from search.resources import describe_shares
from search.searchers import trials_in_study
from search.settings import (
    data_options,
    prepare_inputs,
    requested_samples,
    settings_from_args,
    trial_count,
    with_folds_decided,
)
from search.tuner import SearchSettings
from trainables import AUTO, DEFAULTS, InputError
from trainables.dataset import FEW_VALIDATION_POSITIVES
from trainables.storage import Storage, first_line

# Storage failures while writing results (finished trials stay on disk, so --resume can pick up).
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO}


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
            print(settings.space.describe(trials=trial_count(settings), searcher=settings.search,
                                          max_epochs=settings.max_epochs))
            return 0
        if settings.search == "optuna" and requested_samples(args) >= settings.space.num_grid_trials:
            print(f"note: space {settings.space.name!r} has {settings.space.num_grid_trials} combinations, no more "
                  f"than --num-samples {requested_samples(args)}: Optuna runs each once (its brute-force sampler)")
        if settings.optuna_storage and not args.resume:
            study = settings.study_name or settings.name
            if earlier := trials_in_study(settings.optuna_storage, study):
                print(f"note: study {study!r} in --storage already holds {earlier} trial{'s' * (earlier != 1)}; this "
                      "search adds its trials to it, and Optuna's sampler learns from the earlier ones too")
        if not args.resume:  # a resumed experiment was confirmed when it started
            confirm_trial_count(trial_count(settings), what=f"space {settings.space.name!r}", yes=args.yes)
        _create_folder(settings.storage, flag_value=args.storage_path)
        if args.address and settings.storage.local:  # a bucket is shared by every node already
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
            data_options=data_options(args, settings.space), address=args.address,
            connect_timeout_s=args.connect_timeout, resume=args.resume,
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
        return exit_status()
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"{parser.prog}: error: cannot write results ({err.strerror or err}{where}); free space and "
              f"continue with --resume", file=sys.stderr)
        return 1
    return 0


def _interrupted(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: SearchSettings | None,
                 err: BaseException) -> str:
    """What a Ctrl-C leaves, in one line: the command that continues the experiment, or that nothing was saved."""
    from ray import tune

    folder = settings.experiment if settings is not None else None
    stopped = stopped_in_words(None if settings is None else settings.time_budget_s)
    # A new experiment is resumable once Tune has saved a trial; a resumed one was resumable before this run.
    if folder is not None and (tune.Tuner.can_restore(folder.path, storage_filesystem=folder.ray_filesystem)
                               if args.resume else saved_trial_count(folder) > 0):
        command = resume_command(parser, args, name=settings.name, storage_path=settings.storage_path)
        counts = f" with {err.unfinished} of {err.total} trials unfinished" if isinstance(err, SearchInterrupted) else ""
        return f"{stopped}{counts}; the experiment is saved in {str(folder)!r}; continue it with: {command}"
    if folder is not None and not args.resume and folder.exists():
        # Only this run wrote there (a new experiment needs an empty folder), and Tune saved no trial:
        # without the folder the same command starts afresh, where --resume would be refused.
        _delete_quietly(folder)
    return f"{stopped} before any trial started; nothing was saved"


def _create_folder(folder: Storage, *, flag_value: str) -> None:
    """Create the storage folder and write a file there, before Ray starts: some folders refuse only then (/proc),
    and a bucket's credentials may allow reading only."""
    try:
        folder.mkdir()
    except OSError as err:
        raise InputError(f"--storage-path {flag_value!r} cannot be created: {_reason(err)}") from None
    try:
        folder.check_writable()
    except OSError as err:
        raise InputError(f"--storage-path {flag_value!r} is not writable: {_reason(err)}") from None


def _reason(err: OSError) -> str:
    """An OSError in a few words: its strerror (local), else the first line of pyarrow's message (a bucket's)."""
    return err.strerror or first_line(err)


def _delete_quietly(folder: Storage) -> None:
    try:
        folder.delete()
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
