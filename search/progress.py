"""Live progress of a search: one compact line every ~15 s, or a tqdm bar on a terminal.

Tune's own output (a table per status update, a block per started trial)
runs to tens of thousands of lines on a large grid; ``search.run`` silences it
(``RunConfig(verbose=0)``, back with ``--verbose``) and shows this instead::

    [  1:05] trials 3 done, 2 running, 3 pending, 0 errored | 1.8 epochs/s | best 0.9400 (cnn_bn, both) | ETA 0:52

It is a Tune :class:`~ray.tune.Callback`: Tune calls it from its own loop
(``on_step_end`` after each step, ``on_trial_result`` per reported epoch), so
nothing polls. The arithmetic (counts, rate, ETA, the line) is in pure
functions below, tested without Ray.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray.tune import Callback

DEFAULT_INTERVAL_S = 15.0
# Tune's trial statuses (ray.tune.experiment.Trial); PAUSED trials wait like pending ones.
_DONE, _RUNNING, _ERROR, _WAITING = "TERMINATED", "RUNNING", "ERROR", ("PENDING", "PAUSED")


@dataclass
class Counts:
    """How many trials are in each state; ``pending`` includes trials the searcher has not created yet."""

    done: int = 0
    running: int = 0
    pending: int = 0
    errored: int = 0

    @property
    def total(self) -> int:
        return self.done + self.running + self.pending + self.errored


@dataclass
class Best:
    """The best result so far: its ranking value, the objective shown, and the configuration that varies."""

    rank_value: float
    objective: float
    config: dict[str, Any]


def count_trials(statuses: Sequence[str], *, total: int | None) -> Counts:
    """Trials per state from Tune's statuses; trials not created yet (``total`` minus those seen) are pending."""
    counts = Counts(
        done=sum(s == _DONE for s in statuses),
        running=sum(s == _RUNNING for s in statuses),
        pending=sum(s in _WAITING for s in statuses),
        errored=sum(s == _ERROR for s in statuses),
    )
    if total is not None and total > len(statuses):
        counts.pending += total - len(statuses)
    return counts


def eta_seconds(counts: Counts, *, running_epochs: Sequence[int], finished_epochs: Sequence[int],
                max_epochs: int, epochs_per_s: float) -> float | None:
    """Seconds left: epochs still expected over the current epoch rate; None before there is a rate.

    A trial is expected to run as many epochs as the finished ones did on
    average (early stopping and ASHA make that fewer than ``max_epochs``), or
    ``max_epochs`` before any has finished. Running trials count what they
    have left of that expectation.
    """
    if epochs_per_s <= 0:
        return None
    expected = sum(finished_epochs) / len(finished_epochs) if finished_epochs else float(max_epochs)
    left = counts.pending * expected + sum(max(expected - e, 0.0) for e in running_epochs)
    return left / epochs_per_s


def format_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_best(best: Best | None, *, guard_failed_below: float = -0.5) -> str:
    """``best 0.9400 (cnn_bn, both)``; a best that fails the degenerate-model guard is said so, not shown as -1."""
    if best is None:
        return "best -"
    shown = ", ".join(str(v) for v in best.config.values())
    where = f" ({shown})" if shown else ""
    if best.objective < guard_failed_below:  # guarded objectives sit in [-2, -1] (trainables.objective)
        return f"best: no trial passes the guard yet{where}"
    return f"best {best.objective:.4f}{where}"


def format_rate(epochs_per_s: float) -> str:
    """``1.8 epochs/s``, or per minute or hour when slower: a 5-fold trial's epoch can take minutes."""
    if epochs_per_s <= 0:
        return "no epoch yet"
    for unit, seconds in (("s", 1), ("min", 60)):
        if epochs_per_s * seconds >= 1:
            return f"{epochs_per_s * seconds:.1f} epochs/{unit}"
    return f"{epochs_per_s * 3600:.1f} epochs/h"


def progress_line(*, elapsed_s: float, counts: Counts, epochs_per_s: float, best: Best | None,
                  eta_s: float | None) -> str:
    """The one line printed every interval."""
    return (f"[{format_duration(elapsed_s):>7}] trials {counts.done} done, {counts.running} running, "
            f"{counts.pending} pending, {counts.errored} errored | {format_rate(epochs_per_s)} | "
            f"{describe_best(best)} | ETA {format_duration(eta_s)}")


def is_better(value: float, than: float | None, *, mode: str) -> bool:
    """Whether ``value`` beats ``than`` in direction ``mode`` (NaN never does)."""
    if value is None or math.isnan(value):
        return False
    return than is None or (value > than if mode == "max" else value < than)


@dataclass
class LiveProgress(Callback):
    """A Tune callback printing one progress line every ``interval_s`` (or a tqdm bar on a terminal).

    Parameters
    ----------
    varied_keys : sequence of str
        Config keys the space varies: the best configuration is shown by them.
    max_epochs : int
        The epoch budget of a trial, for the ETA before any trial finishes.
    mode : {"max", "min"}
        Direction of ``rank_metric``.
    rank_metric : str, default="tiebroken_objective"
        What the best trial is chosen by (what the scheduler and searcher compare).
    shown_metric : str, default="objective"
        What is shown for it.
    interval_s : float, default=15.0
        Seconds between lines.
    bar : bool or None, default=None
        A tqdm bar instead of lines; None: when standard output is a terminal.
    """

    varied_keys: Sequence[str]
    max_epochs: int
    mode: str = "max"
    rank_metric: str = "tiebroken_objective"
    shown_metric: str = "objective"
    interval_s: float = DEFAULT_INTERVAL_S
    bar: bool | None = None
    stream: TextIO | None = None  # default: sys.stdout, looked up when the search starts
    _total: int | None = field(default=None, init=False)
    _start: float = field(default=0.0, init=False)
    _last_line: float = field(default=0.0, init=False)
    _epochs_at_last_line: int = field(default=0, init=False)
    _epochs: int = field(default=0, init=False)
    _first_result: float | None = field(default=None, init=False)
    _trial_epochs: dict[str, int] = field(default_factory=dict, init=False)
    _latest: dict[str, Best] = field(default_factory=dict, init=False)
    _tqdm: Any = field(default=None, init=False)
    _ended: set[str] = field(default_factory=set, init=False)  # trials that finished or errored, or were restored so

    def __post_init__(self) -> None:
        super().__init__()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment (for --resume); a stream or a bar does not pickle.
        return {**self.__dict__, "stream": None, "_tqdm": None}

    # --- Tune's hooks -----------------------------------------------------------------------------

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self._total = total_num_samples if total_num_samples and total_num_samples < sys.maxsize else None
        self._start = self._last_line = time.monotonic()
        out = self.stream or sys.stdout
        use_bar = self.bar if self.bar is not None else out.isatty()
        if use_bar:
            from tqdm import tqdm

            self._tqdm = tqdm(total=self._total, unit="trial", file=out, dynamic_ncols=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: Mapping[str, Any], **info) -> None:
        self._epochs += 1
        if self._first_result is None:
            self._first_result = time.monotonic()
        self._trial_epochs[trial.trial_id] = int(result.get("training_iteration", 0))
        value = result.get(self.rank_metric)
        if value is not None:
            # Each trial's latest value only: a trial's objective is that of its kept state,
            # which can fall later (a lower val loss at a lower recall), and the line should
            # not show a best that no trial holds any more.
            config = {k: trial.config.get(k) for k in self.varied_keys}
            self._latest[trial.trial_id] = Best(value, float(result.get(self.shown_metric, value)), config)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._ended.add(trial.trial_id)
        if self._tqdm is not None:
            self._tqdm.update(1)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._ended.add(trial.trial_id)
        if self._tqdm is not None:
            self._tqdm.update(1)

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if not self._epochs:  # before this run's first result, an ended trial is one a resumed experiment restored
            self._ended.update(t.trial_id for t in trials if t.status in (_DONE, _ERROR))

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        now = time.monotonic()
        if now - self._last_line >= self.interval_s:
            self._emit(trials, now)

    def on_experiment_end(self, trials: list, **info) -> None:
        self._emit(trials, time.monotonic())
        if self._tqdm is not None:
            self._tqdm.close()

    @property
    def best(self) -> Best | None:
        """The best of the trials' latest results, by ``rank_metric`` in ``mode``."""
        best = None
        for candidate in self._latest.values():
            if is_better(candidate.rank_value, best.rank_value if best else None, mode=self.mode):
                best = candidate
        return best

    # --- rendering --------------------------------------------------------------------------------

    def _emit(self, trials: list, now: float) -> None:
        # Rates start at the first report: before it, workers start and data arrive (no epochs).
        since = max(self._last_line, self._first_result or now)
        in_window = self._epochs - self._epochs_at_last_line
        self._last_line, self._epochs_at_last_line = now, self._epochs
        # Tune marks the trials it stops on Ctrl-C as TERMINATED too; they did not finish, and resume.
        statuses = [t.status if t.status not in (_DONE, _ERROR) or t.trial_id in self._ended else "PAUSED"
                    for t in trials]
        counts = count_trials(statuses, total=self._total)
        finished = [self._trial_epochs.get(t.trial_id, 0) for t in trials if t.status in (_DONE, _ERROR)]
        running = [self._trial_epochs.get(t.trial_id, 0) for t in trials if t.status == _RUNNING]
        # Overall from the start, not the first report: that comes one epoch in, and a second epoch
        # moments later would read as tens of epochs a second.
        overall = self._epochs / (now - self._start) if now > self._start else 0.0
        # The last window's rate follows the machine; with under 2 epochs in it, the overall rate is steadier.
        rate = in_window / (now - since) if in_window >= 2 and now > since else overall
        eta = eta_seconds(counts, running_epochs=running, finished_epochs=finished, max_epochs=self.max_epochs,
                          epochs_per_s=rate) if self._epochs >= 2 else None
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(f"{counts.running} running, {counts.errored} errored | {format_rate(rate)} | "
                                       f"{describe_best(self.best)}", refresh=True)
            return
        line = progress_line(elapsed_s=now - self._start, counts=counts, epochs_per_s=rate, best=self.best, eta_s=eta)
        print(line, file=self.stream or sys.stdout, flush=True)
