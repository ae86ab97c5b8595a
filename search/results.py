"""What a finished search leaves: ``trials.csv``, a leaderboard, and the chosen config's test score."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from trainables import (
    DEFAULTS,
    KEPT_FILE,
    TIE_BREAKERS,
    Dataset,
    KeptModel,
    Scores,
    average_scores,
    classification_metrics,
    has_checkpoint_file,
    load_kept_model,
)

OBJECTIVE = "objective"  # the guarded metric every trial reports (see trainables.metrics)
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.json"
SETTINGS_FILE = "search.json"  # how the experiment was run, so that analysis can rebuild its data
KEPT_TIE_BREAKERS = tuple(f"kept_{k}" for k in TIE_BREAKERS)
GROUPS = ("config/architecture", "config/strategy", "config/augment")  # the study's comparison
LEADERBOARD_METRICS = ("objective", "kept_val_recall", "kept_val_precision", "kept_val_balanced_accuracy",
                       "kept_val_auc", "kept_epoch", "epochs")


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
    row["guard_passed"] = _guard_passed(metrics, config)
    if "peak_gpu_mem_mib" in metrics:
        row["peak_gpu_mem_mib"] = metrics["peak_gpu_mem_mib"]
    row["weights_kept"] = weights_kept
    row["error"] = error
    row["node_id"] = metrics.get("node_id", "")
    row["path"] = path
    return row


def write_text_atomically(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv_atomically(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as CSV, written atomically."""
    return write_text_atomically(frame.to_csv(index=False), path)


def rank_trials(frame: pd.DataFrame, *, mode: str) -> pd.DataFrame:
    """Trials best first: by objective, ties broken by validation balanced accuracy, then AUC.

    Recall ties are common (several trials find every validation positive);
    the tie-breakers prefer the one that also gets the negatives right. A tie
    on all of them goes to the lowest trial id, so that every reader of an
    experiment (this CLI, ``analysis``) picks the same trial. Errored trials
    are left out: their metrics are those of a run cut short, and their kept
    state may be the only one that looks good.
    """
    if frame.empty or OBJECTIVE not in frame:
        return frame.head(0)
    frame = frame[~errored(frame)]
    keys = [k for k in (OBJECTIVE, *KEPT_TIE_BREAKERS) if k in frame]
    ascending = [mode == "min"] + [False] * (len(keys) - 1)
    if "trial_id" in frame:
        keys, ascending = keys + ["trial_id"], ascending + [True]
    return frame.sort_values(keys, ascending=ascending, na_position="last", kind="stable")


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


def evaluate_best(results: tune.ResultGrid, frame: pd.DataFrame, datasets: dict[int, Dataset], *,
                  mode: str, ensemble_top: int = 1) -> dict[str, Any] | None:
    """Reload the best-ranked trial's kept model and score it once on the test split.

    The choice is made on validation metrics only (:func:`rank_trials`); the
    test split is touched here, for the chosen configuration alone, to report
    it. With ``ensemble_top`` > 1, the mean probability of the top trials' kept
    models is reported beside it (``"ensemble"``), with its own operating
    threshold set on its validation scores.
    """
    ranked = rank_trials(frame.dropna(subset=[OBJECTIVE]) if OBJECTIVE in frame else frame, mode=mode)
    if ranked.empty:
        return None
    by_path = {r.path: r for r in results}
    best = by_path[ranked["path"].iloc[0]]
    if best.checkpoint is None:
        return None
    kept = load_kept_model(best.checkpoint)
    scores = kept.scores(datasets[kept.image_size].test)
    chosen = {
        "config": kept.config.to_dict(),
        "trial_path": best.path,
        "folds": len(kept.models),
        "val": _kept_metrics(best.metrics, "val_"),
        **({"out_of_fold": oof} if (oof := _kept_metrics(best.metrics, "oof_")) else {}),
        "test": classification_metrics(scores.y_true, scores.predictions(), scores.y_score, prefix="test_"),
        **_at_threshold(scores, kept.threshold),
    }
    if ensemble_top > 1:
        members = [by_path[p] for p in ranked["path"] if has_checkpoint_file(by_path[p].checkpoint, KEPT_FILE)]
        if len(members) > 1:
            chosen["ensemble"] = _ensemble_report([load_kept_model(m.checkpoint) for m in members[:ensemble_top]],
                                                  [m.path for m in members[:ensemble_top]], datasets,
                                                  target_recall=kept.config.target_recall)
    return chosen


def _kept_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The kept state's metrics whose name starts with ``prefix`` (``val_``, ``oof_``), without ``kept_``."""
    return {k.removeprefix("kept_"): v for k, v in metrics.items() if k.startswith(f"kept_{prefix}")}


def _at_threshold(scores: Scores, threshold: float) -> dict[str, Any]:
    """The test metrics at the operating threshold delivered with the model (set on validation, applied as is)."""
    if math.isnan(threshold):
        return {}
    return {"operating_threshold": threshold,
            "test_at_operating_threshold": classification_metrics(scores.y_true, scores.predictions(threshold),
                                                                  scores.y_score, prefix="test_")}


def _ensemble_report(members: list[KeptModel], paths: list[str], datasets: dict[int, Dataset], *,
                     target_recall: float) -> dict[str, Any]:
    """The mean probability of several trials' kept models: validation (or out-of-fold) metrics, and test once."""
    val = average_scores([m.validation_scores(datasets[m.image_size].val) for m in members])
    test = average_scores([m.scores(datasets[m.image_size].test) for m in members])
    val_metrics = classification_metrics(val.y_true, val.predictions(), val.y_score, prefix="val_",
                                         target_recall=target_recall)
    return {
        "members": paths,
        "val": val_metrics,
        "test": classification_metrics(test.y_true, test.predictions(), test.y_score, prefix="test_"),
        **_at_threshold(test, val_metrics["val_threshold_at_recall"]),
    }


def objective_in_words(trials: pd.DataFrame, *, min_balanced_accuracy: float | None = None,
                       digits: int = 4) -> pd.Series:
    """The objective as a reader should see it: its value, or why the trial was demoted.

    A trial below the degenerate-model guard carries ``metric - 2`` (e.g.
    -1.0) so that it ranks last; shown as a number that reads like a metric.
    Here it reads ``failed guard: balanced accuracy 0.50 < 0.60``. The floor
    is ``min_balanced_accuracy``, else the trials' ``config/min_balanced_accuracy``.
    """
    if "objective" not in trials:
        raise ValueError(f"trials lack column objective; available: {', '.join(map(str, trials.columns))}")
    if min_balanced_accuracy is None:
        floors = trials.get("config/min_balanced_accuracy")
        min_balanced_accuracy = float(floors.iloc[0]) if floors is not None and len(floors) else \
            DEFAULTS["min_balanced_accuracy"]
    balanced = trials.get("kept_val_balanced_accuracy", pd.Series(np.nan, index=trials.index))

    def words(objective: float, bal: float, passed: object) -> str:
        if pd.isna(objective):
            return "no epoch reported"
        failed = passed is False or (pd.isna(passed) and objective < -0.5 and min_balanced_accuracy > 0)
        if failed:
            shown = "?" if pd.isna(bal) else f"{bal:.2f}"
            return f"failed guard: balanced accuracy {shown} < {min_balanced_accuracy:.2f}"
        return f"{objective:.{digits}f}"

    passed = trials["guard_passed"] if "guard_passed" in trials else pd.Series(np.nan, index=trials.index)
    return pd.Series([words(o, b, p) for o, b, p in zip(trials["objective"], balanced, passed, strict=True)],
                     index=trials.index, name="objective")


def write_json_atomically(content: dict[str, Any], path: Path) -> Path:
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


def _guard_passed(metrics: dict[str, Any], config: dict[str, Any]) -> bool | None:
    """Whether the kept state clears the degenerate-model floor; None before any epoch."""
    balanced = metrics.get("kept_val_balanced_accuracy")
    if balanced is None or math.isnan(balanced):
        return None
    return balanced >= config.get("min_balanced_accuracy", DEFAULTS["min_balanced_accuracy"])


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"[:500]
