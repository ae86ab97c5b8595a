"""Start or join Ray, run the Tuner (or resume it), and write what a finished search leaves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from search.connect import CONNECT_TIMEOUT_S, init_ray, limit_malloc_arenas
from search.data_record import DATA_FILE, check_same_data, data_record
from search.files import read_json
from search.interrupt import (
    SearchInterrupted,
    hold_sigint,
    quiet_missing_metrics,
    raise_if_interrupted,
    sigterm_as_sigint,
    time_budget,
    tune_sigint,
    unfinished_trials,
)
from search.preflight import (
    check_local_resources,
    cluster_shortfall,
)
from search.progress import DEFAULT_INTERVAL_S, LiveProgress
from search.resources import largest_gpu_request
from search.settings import trial_count, with_folds_decided
from search.tuner import SearchSettings
from trainables import (
    DEFAULTS,
    Dataset,
)
from trainables.storage import Storage


class TrialsFailed(Exception):
    """Every trial of the search errored; ``trials.csv`` holds their errors."""


def run(settings: SearchSettings, *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict],
        source_image_size: int | None, data_options: dict[str, Any], address: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S, resume: bool = False, retry_errored: bool = False,
        progress_interval_s: float = DEFAULT_INTERVAL_S, command: str | None = None) -> Path | Storage:
    """Run (or resume) the search; write ``trials.csv`` and ``best.json`` in the experiment folder and return it.

    The folder is a local ``Path``, or a :class:`~trainables.storage.Storage` on a bucket (``--storage-path s3://...``).

    ``command`` is the command line that ran it, recorded in ``best.json`` (and the exported card).
    """
    import ray

    from search.comparison import (
        COMPARISONS_FILE,
        compare,
        comparison_lines,
        held_out_by_trial,
        tie_marks,
    )
    from search.deliverable import deliver, delivery_lines
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
    from search.tuner import build_tuner, restore_tuner
    from trainables.classifier import BEST_FILE

    settings = with_folds_decided(settings, datasets)  # as search.json records it, and the trials take it
    if not ray.is_initialized():
        limit_malloc_arenas()  # before Ray's threads start
        with hold_sigint():  # a Ctrl-C while Ray starts takes effect once it has started
            init_ray(address, verbose=settings.verbose, timeout_s=connect_timeout_s)
        sigterm_as_sigint()  # back from Ray's core worker, which took SIGTERM to abort with a stack dump
        _check_started_ray_fits(settings, address)
    inputs = {"datasets": datasets, "imagenet_states": imagenet_states, "source_image_size": source_image_size}
    folder = settings.experiment  # every file below goes through its filesystem, local or a bucket's
    if resume:
        path = folder / DATA_FILE  # absent for experiments started before it was recorded
        check_same_data(datasets, read_json(path, missing="", unreadable=f"cannot read {str(path)!r}")
                        if path.exists() else None)
        with quiet_missing_metrics():  # trials a Ctrl-C stopped before their first result
            tuner = restore_tuner(settings, retry_errored=retry_errored, **inputs)
    else:
        write_json_atomically(settings.describe(data_options), folder / SETTINGS_FILE)
        record = data_record(datasets)
        if record is not None:
            write_json_atomically(record, folder / DATA_FILE)
        progress = [] if settings.verbose else [LiveProgress(
            varied_keys=[k for k in settings.space.dimensions if settings.space.varies(k)],
            max_epochs=settings.max_epochs, mode=settings.mode, interval_s=progress_interval_s)]
        tuner = build_tuner(settings, **inputs, callbacks=progress)
    raise_if_interrupted()  # a Ctrl-C whose KeyboardInterrupt some code caught: not into Tune with it
    with time_budget(settings.time_budget_s), tune_sigint() as tune_stop:
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
    best = deliver(results, frame, datasets, mode=settings.mode, folder=folder.path, ensemble_top=settings.ensemble_top,
                   first=None if comparisons is None else comparisons["chosen"])
    if best is not None:
        choice = None if comparisons is None else {k: comparisons[k] for k in ("best", "tied_with_best", "compared",
                                                                                 "rule", "rule_words", "chosen")}
        record = {**best, "choice": choice, "command": command}
        write_json_atomically(record, folder / BEST_FILE)
        print("\n" + "\n".join(delivery_lines(best, folder / BEST_FILE)))
        if settings.mlflow_uri is not None:
            from search.tracking import log_chosen  # imports mlflow (1.6 s): only with --mlflow

            log_chosen(settings.mlflow_uri, experiment=settings.name, best=record, best_file=folder / BEST_FILE)
    return Path(folder.path) if folder.local else folder


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
