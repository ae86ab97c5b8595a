"""Ctrl-C: an interrupted search writes nothing that looks final, and says the command that continues it.

Ray Tune catches the first SIGINT inside ``Tuner.fit()``: it saves the
experiment state, stops the trials and *returns*, as if the search had
finished, and logs its own ``Tuner.restore(...)`` hint. Here a fit whose saved
state has unfinished trials is an interruption (:class:`SearchInterrupted`),
and the hint printed is this command line with ``--resume``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that SIGINT ended
# Flags whose value is a path: the resume command gives them absolute, so it works from any folder.
PATH_FLAGS = frozenset({"data", "weights_dir", "storage_path"})


class SearchInterrupted(Exception):
    """Tune returned with trials that neither finished nor failed: someone pressed Ctrl-C."""

    def __init__(self, unfinished: int, total: int):
        super().__init__(f"{unfinished} of {total} trials unfinished")
        self.unfinished, self.total = unfinished, total


def unfinished_trials(folder: Path, *, expected: int) -> int:
    """Trials that Tune's saved experiment has not finished: running, pending or paused there, or not created yet.

    After a SIGINT, the ``ResultGrid`` that ``fit()`` returns calls the trials
    it stopped terminated; the snapshot it saved just before still has them
    running, and that snapshot is what ``--resume`` continues. A grid that
    creates trials lazily (``--max-concurrent-trials``) may have created
    fewer than ``expected``.
    """
    from ray import tune

    trials = tune.ExperimentAnalysis(str(folder)).trials
    finished = sum(trial.status in ("TERMINATED", "ERROR") for trial in trials)
    return max(expected, len(trials)) - finished


@contextmanager
def tune_sigint() -> Iterator[None]:
    """Run ``Tuner.fit()`` under Tune's SIGINT handler, then put back the one in place before.

    Tune leaves its handler installed when no SIGINT came; a Ctrl-C while the
    results are written would then be swallowed. Its restore hint (for the
    Python API, not this command line) is dropped from its log.
    """
    handler = signal.getsignal(signal.SIGINT)
    hint = _DropRestoreHint()
    logging.getLogger("ray.tune.tune").addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger("ray.tune.tune").removeFilter(hint)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


class _DropRestoreHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


def resume_command(parser: argparse.ArgumentParser, args: argparse.Namespace, *, name: str,
                   storage_path: Path) -> str:
    """The command line that continues this experiment: the same flags, absolute paths, ``--name`` and ``--resume``."""
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
    is_path = dest in PATH_FLAGS or (dest == "space" and str(value).endswith(".json"))
    return str(Path(value).expanduser().resolve()) if is_path and value != "digits" else str(value)
