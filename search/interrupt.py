"""Ctrl-C: an interrupted search writes nothing that looks final, and says the command that continues it.

Ray Tune catches the first SIGINT inside ``Tuner.fit()``: it saves the
experiment state, stops the trials and *returns*, as if the search had
finished, and logs its own ``Tuner.restore(...)`` hint. Here a fit whose saved
state has unfinished trials is an interruption (:class:`SearchInterrupted`),
and the hint printed is this command line with ``--resume``.

Outside Tune's handler, the command's own (:func:`catch_sigint`) counts every
SIGINT before it raises ``KeyboardInterrupt``: one that some code catches
still stops the run at the next :func:`raise_if_interrupted`. While Ray
starts (:func:`hold_sigint`), a first SIGINT waits for the end of
``ray.init``: raised inside it, ``KeyboardInterrupt`` left a half-built Ray
core worker in the process, which then died of SIGSEGV at exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainables.storage import Storage, as_storage, is_remote

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that SIGINT ended
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_TIME_BUDGET = 124  # as timeout(1) reports a command that ran out of time
ANALYSIS_LOGGER = "ray.tune.analysis.experiment_analysis"  # warns of trials without results
# Flags whose value is a path: the resume command gives them absolute, so it works from any folder.
PATH_FLAGS = frozenset({"data", "weights_dir", "storage_path"})
HOLD_NOTE = b"python -m search.run: stopping once Ray has started (Ctrl-C again to stop at once)\n"


class _Sigints:
    """What :func:`catch_sigint`'s handler saw: SIGINTs received, and whether a first one is held."""

    count = 0
    holding = False
    terminated = False  # the stop came as SIGTERM (a batch scheduler, Kubernetes, timeout)
    out_of_time = False  # the stop came from --time-budget


def _on_sigint(signum: int, frame: Any) -> None:
    _Sigints.count += 1
    if _Sigints.holding and _Sigints.count == 1:
        try:  # not print(): the main thread may be inside a write to sys.stderr
            os.write(2, HOLD_NOTE)
        except OSError:
            pass
        return
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: Any) -> None:
    # SIGTERM takes Ctrl-C's path: Tune saves the experiment and stops the trials, and the command says how
    # to go on. Without this, Ray's handler (installed by ray.init) aborts with its stack dump.
    _Sigints.terminated = True
    os.kill(os.getpid(), signal.SIGINT)


def sigterm_as_sigint() -> None:
    """SIGTERM handled as Ctrl-C from now on; call it again after ``ray.init``, whose core worker takes SIGTERM."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def exit_status() -> int:
    """The exit status of an interrupted run: 124 when the time budget ran out, 143 after a SIGTERM, else 130."""
    if _Sigints.out_of_time:
        return EXIT_TIME_BUDGET
    return EXIT_TERMINATED if _Sigints.terminated else EXIT_INTERRUPTED


def stopped_in_words(time_budget_s: float | None) -> str:
    """What stopped the run: ``interrupted``, ``terminated (SIGTERM)`` or ``time budget of 30 s reached``."""
    if _Sigints.out_of_time:
        return f"time budget of {time_budget_s:g} s reached"
    return "terminated (SIGTERM)" if _Sigints.terminated else "interrupted"


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Within the block, a SIGINT to this process once ``seconds`` have passed: the search stops as on Ctrl-C.

    Tune's own ``time_budget_s`` ends the unfinished trials as if they had
    finished, and a restored experiment would not run them again; stopped as
    on Ctrl-C they are saved where they stood, and ``--resume`` continues them
    (with the budget again, from its own start).
    """
    if seconds is None:
        yield
        return

    def out_of_time() -> None:
        _Sigints.out_of_time = True
        os.kill(os.getpid(), signal.SIGINT)

    with calling_after(seconds, out_of_time):
        yield


@contextmanager
def calling_after(seconds: float, action: Callable[[], None]) -> Iterator[None]:
    """Within the block, ``action`` called from a timer thread once ``seconds`` have passed."""
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def catch_sigint() -> Iterator[None]:
    """The command's SIGINT handler for a whole run: it counts each SIGINT, then raises ``KeyboardInterrupt``.

    Tune's handler replaces it inside ``Tuner.fit()`` and puts it back after a
    first SIGINT. Only the main thread can set handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    _Sigints.count, _Sigints.holding, _Sigints.terminated, _Sigints.out_of_time = 0, False, False, False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_term is None else previous_term)
        _Sigints.count, _Sigints.holding = 0, False


def raise_if_interrupted() -> None:
    """``KeyboardInterrupt`` if :func:`catch_sigint`'s handler saw a SIGINT, even one whose exception was caught."""
    if _Sigints.count:
        raise KeyboardInterrupt


@contextmanager
def hold_sigint() -> Iterator[None]:
    """Under :func:`catch_sigint`: a first SIGINT in the block raises ``KeyboardInterrupt`` at its end, a second at once."""
    raise_if_interrupted()
    if signal.getsignal(signal.SIGINT) is not _on_sigint:
        yield
        return
    _Sigints.holding = True
    try:
        yield
    finally:
        _Sigints.holding = False
    raise_if_interrupted()


class SearchInterrupted(Exception):
    """Tune returned with trials that neither finished nor failed: a Ctrl-C or SIGTERM, or the time budget ran out."""

    def __init__(self, unfinished: int, total: int):
        super().__init__(f"{unfinished} of {total} trials unfinished")
        self.unfinished, self.total = unfinished, total


def unfinished_trials(folder: Path | Storage, *, expected: int) -> int:
    """Trials that Tune's saved experiment has not finished: running, pending or paused there, or not created yet.

    After a SIGINT, the ``ResultGrid`` that ``fit()`` returns calls the trials
    it stopped terminated; the snapshot it saved just before still has them
    running, and that snapshot is what ``--resume`` continues. A grid that
    creates trials lazily (``--max-concurrent-trials``) may have created
    fewer than ``expected``.
    """
    trials = _saved_trials(folder)
    finished = sum(trial.status in ("TERMINATED", "ERROR") for trial in trials)
    return max(expected, len(trials)) - finished


def saved_trial_count(folder: Path | Storage) -> int:
    """Trials in the experiment state Tune saved in ``folder``; 0 if it saved none.

    Tune writes ``tuner.pkl`` when the Tuner is built, and a state without
    trials when a SIGINT stops it before the first: neither holds anything to
    resume (``--resume`` would log Tune's failure to restore and start afresh).
    """
    if not as_storage(folder).is_dir():
        return 0
    try:
        return len(_saved_trials(folder))
    except ValueError:  # no experiment_state-*.json
        return 0


def _saved_trials(folder: Path | Storage) -> list:
    from ray import tune

    folder = as_storage(folder)
    # Tune warns for each trial that has no result yet (one stopped in its first epoch): not news after a Ctrl-C.
    analysis_log = logging.getLogger(ANALYSIS_LOGGER)
    level = analysis_log.level
    analysis_log.setLevel(logging.ERROR)
    try:
        return tune.ExperimentAnalysis(folder.path, storage_filesystem=folder.ray_filesystem).trials
    finally:
        analysis_log.setLevel(level)


class TuneStop:
    """Whether Tune's handler received a stop signal during ``fit()``; set when :func:`tune_sigint` ends."""

    received = False


@contextmanager
def tune_sigint() -> Iterator[TuneStop]:
    """Run ``Tuner.fit()`` under Tune's SIGINT handler, then put back the one in place before.

    Tune leaves its handler installed when no SIGINT came; a Ctrl-C while the
    results are written would then be swallowed. Its restore hint (for the
    Python API, not this command line) is dropped from its log.

    Tune installs one handler on SIGINT and SIGUSR1, and on a signal puts back
    the SIGINT handler it replaced: after ``fit()``, a SIGINT handler other than
    the one left on SIGUSR1 means that Tune received a stop signal, even one
    that came after its last trial ended, which ``fit()`` does not report.
    """
    handler = signal.getsignal(signal.SIGINT)
    usr1 = getattr(signal, "SIGUSR1", None)
    usr1_handler = signal.getsignal(usr1) if usr1 is not None else None
    stop = TuneStop()
    hint = _DropRestoreHint()
    logging.getLogger("ray.tune.tune").addFilter(hint)
    try:
        with quiet_missing_metrics():
            yield stop
    finally:
        logging.getLogger("ray.tune.tune").removeFilter(hint)
        tune_handler = signal.getsignal(usr1) if usr1 is not None else usr1_handler
        # Not in this process (a Ray client's fit runs on the cluster), or not on SIGINT (Tune's switch).
        tune_on_sigint = tune_handler is not usr1_handler and os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") == "0"
        stop.received = tune_on_sigint and signal.getsignal(signal.SIGINT) is not tune_handler
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


@contextmanager
def quiet_missing_metrics() -> Iterator[None]:
    """Without Tune's warning about trials that have no result yet (one FileNotFoundError line per trial)."""
    missing = _DropMissingMetrics()
    logging.getLogger(ANALYSIS_LOGGER).addFilter(missing)
    try:
        yield
    finally:
        logging.getLogger(ANALYSIS_LOGGER).removeFilter(missing)


class _DropMissingMetrics(logging.Filter):
    # Tune's ResultGrid warns of every trial that had not reported when fit() returned, each with a
    # FileNotFoundError: after a Ctrl-C as trials start, that read as a failure; the line counts them instead.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to fetch metrics for" not in record.getMessage()


class _DropRestoreHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


def resume_command(parser: argparse.ArgumentParser, args: argparse.Namespace, *, name: str,
                   storage_path: Path | str) -> str:
    """The command line that continues this experiment: the same flags, absolute paths, ``--name`` and ``--resume``.

    A ``--storage-path`` URI of a bucket (``s3://...``) is repeated as it was given.
    """
    values = {**vars(args), "name": name, "storage_path": str(storage_path), "resume": True}
    words = [sys.executable, "-m", "search.run"]
    for action in parser._actions:  # argparse has no public list of its options
        if not action.option_strings or action.dest == "help":
            continue
        flag, value = action.option_strings[-1], values.get(action.dest)
        if action.nargs == 0:  # store_true
            words += [flag] if value else []
        elif value is not None and (value != action.default or action.dest in ("name", "storage_path")):
            words += [flag, _absolute(action.dest, value)]
    return shlex.join(words)


def _absolute(dest: str, value: Any) -> str:
    is_path = (dest in PATH_FLAGS and not is_remote(value)) or (dest == "space" and str(value).endswith(".json"))
    return str(Path(value).expanduser().resolve()) if is_path and value != "digits" else str(value)
