"""What a finished search leaves of its trials: ``trials.csv``, their ranking and the leaderboard (search.deliverable: the rest)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from trainables import DEFAULTS, KEPT_FILE, TIE_BREAKERS, has_checkpoint_file
from trainables.objective import guard_acts, passes_guard
from trainables.storage import Storage, write_local_atomically

OBJECTIVE = "objective"  # the guarded metric every trial reports (see trainables.objective)
TRIALS_FILE = "trials.csv"
SETTINGS_FILE = "search.json"  # how the experiment was run, so that analysis can rebuild its data
KEPT_TIE_BREAKERS = tuple(f"kept_{k}" for k in TIE_BREAKERS)
GROUPS = ("config/architecture", "config/strategy", "config/augment")  # the study's comparison
LEADERBOARD_METRICS = ("objective", "kept_val_recall", "kept_val_precision", "kept_val_balanced_accuracy",
                       "kept_val_auc", "kept_epoch", "epochs", "tie")  # tie: search.comparison's mark


def trials_frame(results: tune.ResultGrid, *, max_epochs: int) -> pd.DataFrame:
    """One row per trial: ``config/...`` columns, the kept state's metrics, how the trial ended."""
    return pd.DataFrame([
        trial_row(trial_id=(r.metrics or {}).get("trial_id", Path(r.path).name), config=r.config or {},
                  metrics=r.metrics or {}, error=_one_line(r.error) if r.error else "", path=r.path,
                  max_epochs=max_epochs, weights_kept=has_checkpoint_file(r.checkpoint, KEPT_FILE))
        for r in results
    ])


def trial_row(*, trial_id: str, config: dict[str, Any], metrics: dict[str, Any], error: str, path: str,
              max_epochs: int, weights_kept: bool | None = None) -> dict[str, Any]:
    """One row of ``trials.csv``: config, the kept state's metrics, how the trial ended, whether its weights stay.

    ``weights_kept`` is False for a trial whose weights the search deleted
    (search.retention): its metrics are all that is left of it.
    """
    row: dict[str, Any] = {"trial_id": trial_id}
    row.update({f"config/{k}": v for k, v in config.items()})
    row["epochs"] = metrics.get("training_iteration", 0)
    row["ended_by"] = ended_by(metrics, errored=bool(error), max_epochs=max_epochs)
    row.update({k: v for k, v in metrics.items() if k == OBJECTIVE or k.startswith("kept_")})
    row["guard_passed"] = _guard_passed(metrics, config, ended=row["ended_by"])
    if "parameters" in metrics:
        row["parameters"] = metrics["parameters"]
    if "peak_gpu_mem_mib" in metrics:
        row["peak_gpu_mem_mib"] = metrics["peak_gpu_mem_mib"]
    row["weights_kept"] = weights_kept
    row["error"] = error
    row["node_id"] = metrics.get("node_id", "")
    row["path"] = path
    return row


def write_text_atomically(text: str, path: Path | Storage) -> Path | Storage:
    """Write ``text`` to ``path`` whole, so a reader never sees half a file: a local path through a temporary
    file, a :class:`~trainables.storage.Storage` (a bucket's file) as its filesystem allows."""
    if isinstance(path, Storage):
        return path.write_text(text)
    return write_local_atomically(text, path)


def write_csv_atomically(frame: pd.DataFrame, path: Path | Storage) -> Path | Storage:
    """``frame`` as CSV, written atomically."""
    return write_text_atomically(frame.to_csv(index=False), path)


def rank_trials(frame: pd.DataFrame, *, mode: str) -> pd.DataFrame:
    """Trials best first: by objective, ties broken by validation balanced accuracy, then AUC.

    A trial that failed the degenerate-model guard ranks after every trial
    that passed it, and a diverged one after those. Recall ties are common
    (several trials find every validation positive); the tie-breakers prefer
    the one that also gets the negatives right. A tie
    on all of them goes to the lowest trial id, so that every reader of an
    experiment (this CLI, ``analysis``) picks the same trial. Errored trials
    are left out: their metrics are those of a run cut short, and their kept
    state may be the only one that looks good.
    """
    if frame.empty or OBJECTIVE not in frame:
        return frame.head(0)
    frame = frame[~errored(frame)]
    # Every trial that failed the guard after every one that did not, whatever the metric's scale
    # (a loss's +2 demotion alone cannot promise that); diverged trials after those.
    order = pd.DataFrame({"_failed": frame["guard_passed"].eq(False) if "guard_passed" in frame else False,
                          "_diverged": frame["ended_by"].eq("diverged") if "ended_by" in frame else False},
                         index=frame.index)
    keys = [k for k in (OBJECTIVE, *KEPT_TIE_BREAKERS) if k in frame]
    ascending = [True, True, mode == "min"] + [False] * (len(keys) - 1)
    keys = ["_diverged", "_failed", *keys]
    if "trial_id" in frame:
        keys, ascending = keys + ["trial_id"], ascending + [True]
    ranked = frame.join(order).sort_values(keys, ascending=ascending, na_position="last", kind="stable")
    return ranked.drop(columns=["_failed", "_diverged"])


def best_per_group(trials: pd.DataFrame, *, mode: str = "max", groups: Sequence[str] = GROUPS) -> pd.DataFrame:
    """The best trial of each group (architecture x strategy x augmentation), best groups first.

    Trials are ordered as :func:`rank_trials` orders them; groups a space does
    not vary are dropped from the key; trials without an objective are left out.
    """
    if OBJECTIVE not in trials:
        raise ValueError(f"trials lack column(s) {OBJECTIVE}; available: {', '.join(map(str, trials.columns))}")
    ranked = rank_trials(trials.dropna(subset=[OBJECTIVE]), mode=mode)
    keys = [g for g in groups if g in ranked]
    best = ranked.groupby(keys, sort=False, dropna=False).head(1) if keys else ranked.head(1)
    return best.reset_index(drop=True)


def errored(frame: pd.DataFrame) -> pd.Series:
    """Per trial, whether it ended with an error (``ended_by``, else a non-empty ``error``)."""
    if "ended_by" in frame:
        return frame["ended_by"].eq("error")
    if "error" in frame:
        return frame["error"].fillna("").astype(str).ne("")
    return pd.Series(False, index=frame.index)


def leaderboard(frame: pd.DataFrame, *, mode: str, top: int = 5) -> pd.DataFrame:
    """The ``top`` trials, best first, showing only the config keys that vary."""
    ranked = rank_trials(frame, mode=mode).head(top)
    varied = [c for c in frame if c.startswith("config/") and frame[c].astype(str).nunique() > 1]
    shown = [c for c in LEADERBOARD_METRICS if c in frame]
    board = ranked[varied + shown]
    if "objective" in board and not board.empty:  # a guarded-out trial's -1.0 reads like a metric; say why
        board = board.assign(objective=objective_in_words(ranked))
    return board.rename(columns=lambda c: c.removeprefix("config/")).reset_index(drop=True)


def objective_in_words(trials: pd.DataFrame, *, min_balanced_accuracy: float | None = None,
                       digits: int = 4) -> pd.Series:
    """The objective as a reader should see it: its value, or why the trial was demoted.

    A trial below the degenerate-model guard carries ``metric - 2`` (e.g.
    -1.0) so that it ranks last; shown as a number that reads like a metric.
    Here it reads ``failed guard: balanced accuracy 0.50 < 0.60``, only where
    the guard acted (``guard_passed`` False); a diverged trial reads
    ``diverged``. The floor is ``min_balanced_accuracy``, else the trials'
    ``config/min_balanced_accuracy``.
    """
    if "objective" not in trials:
        raise ValueError(f"trials lack column objective; available: {', '.join(map(str, trials.columns))}")
    if min_balanced_accuracy is None:
        floors = trials.get("config/min_balanced_accuracy")
        min_balanced_accuracy = float(floors.iloc[0]) if floors is not None and len(floors) else \
            DEFAULTS["min_balanced_accuracy"]
    balanced = trials.get("kept_val_balanced_accuracy", pd.Series(np.nan, index=trials.index))

    def words(objective: float, bal: float, passed: object, ended: object) -> str:
        if ended == "diverged":
            return "diverged (a loss or score that is not finite)"
        if pd.isna(objective):
            return "no epoch reported"
        if str(passed) == "False":  # False, numpy's False, or read back from trials.csv
            shown = "?" if pd.isna(bal) else f"{bal:.2f}"
            return f"failed guard: balanced accuracy {shown} < {min_balanced_accuracy:.2f}"
        return f"{objective:.{digits}f}"

    if "guard_passed" in trials:
        passed = trials["guard_passed"]
    else:  # a frame from before guard_passed was recorded: a guarded-out objective is below -0.5
        passed = pd.Series([False if o < -0.5 and min_balanced_accuracy > 0 else None for o in trials["objective"]],
                           index=trials.index, dtype=object)
    ended = trials["ended_by"] if "ended_by" in trials else pd.Series("", index=trials.index)
    return pd.Series([words(o, b, p, e) for o, b, p, e in zip(trials["objective"], balanced, passed, ended, strict=True)],
                     index=trials.index, name="objective")


def guard_in_words(metric: str, min_balanced_accuracy: float) -> str:
    """What the degenerate-model guard does to ``metric``, for the leaderboard's header and the report."""
    if guard_acts(metric, min_balanced_accuracy):
        return f"guard: balanced accuracy >= {min_balanced_accuracy}, failures rank last"
    if min_balanced_accuracy <= 0:
        return "unguarded (--min-balanced-accuracy 0)"
    return "no guard needed: a ranking metric, which calling every image positive cannot win"


def write_json_atomically(content: dict[str, Any], path: Path | Storage) -> Path | Storage:
    """``content`` as JSON, written atomically."""
    return write_text_atomically(json.dumps(content, indent=2, default=str), path)


def ended_by(metrics: dict[str, Any], *, errored: bool, max_epochs: int) -> str:
    """error, diverged (a loss that is not finite), patience (early stopping), max_epochs, or scheduler (ASHA)."""
    if errored:
        return "error"
    if metrics.get("diverged"):
        return "diverged"
    if metrics.get("stopped_early"):
        return "patience"
    if metrics.get("training_iteration", 0) >= max_epochs:
        return "max_epochs"
    return "scheduler"


def _guard_passed(metrics: dict[str, Any], config: dict[str, Any], *, ended: str) -> bool | None:
    """Whether the kept state clears the degenerate-model floor; None where the guard does not act (the trial's
    metric is a ranking metric, the floor is 0, the trial diverged) or before any epoch."""
    floor = config.get("min_balanced_accuracy", DEFAULTS["min_balanced_accuracy"])
    metric = config.get("metric", DEFAULTS["metric"])
    balanced = metrics.get("kept_val_balanced_accuracy")
    if ended == "diverged" or not guard_acts(metric, floor):
        return None
    if balanced is None or math.isnan(balanced):
        return None
    return passes_guard({"val_balanced_accuracy": balanced}, floor)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"[:500]
