"""The report of one experiment: the study's tables, curves and Grad-CAMs as report.md and report.html.

Configurations are chosen on validation metrics only; the test split is read
once per chosen model, to report it. Whatever cannot be shown (a missing
checkpoint, data that is no longer there) is listed in the report, and the
rest is still written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from analysis.comparisons import comparisons_section
from analysis.delivered import Scored, candidates_section, delivered_section
from analysis.document import Document
from analysis.evaluation import load_kept_model, rebuild_datasets
from analysis.experiment import Experiment, load_experiment
from search.data_record import DataChangedError
from analysis.figures import all_trials_figure
from analysis.importance import dimension_importance
from analysis.study import (
    ARCHITECTURE,
    STRATEGY,
    best_cells,
    importance_figure,
    parallel_coordinates_figure,
    pareto_figure,
    pareto_front,
    strategy_panel_figure,
    validation_vs_test_figure,
)
from analysis.tables import (
    BOOTSTRAP_METRICS,
    GROUPS,
    best_per_group,
    bootstrap_intervals,
    bootstrap_metric,
    objective_in_words,
)
from search.results import guard_in_words
from trainables import DEFAULTS, PNEUMONIA, Dataset, InputError
from trainables.dataset import FEW_VALIDATION_POSITIVES
from trainables.storage import Storage, is_remote, user_folder

# F1 and AP are left to trials.csv: with them the table was wider than an 800 px page.
SHOWN_METRICS = ("objective", "kept_val_recall", "kept_val_precision", "kept_val_balanced_accuracy",
                 "kept_val_auc", "kept_epoch", "epochs", "ended_by", "tie")
# Below this many minority examples in validation, one example moves recall by more than 2 points.
VAL_TEST_METRICS = ("recall", "precision", "auc")  # the validation-vs-test view (bootstrap_intervals' rows)


def short_name(column: str) -> str:
    """A column header that fits a narrow table: ``kept_val_balanced_accuracy`` -> ``val balanced accuracy``."""
    column = column.removeprefix("config/")
    return (column.removeprefix("kept_") if column.startswith("kept_val_") else column).replace("_", " ")


def build_report(path: str, *, out_dir: str | Path | None = None, examples: int = 4,
                 resamples: int = 1000) -> Path | Storage:
    """Write report.md, report.html and the PNGs for the experiment at ``path``; return the folder.

    ``path`` may be a bucket's URI (``s3://...``): the experiment is read there, and the report goes to
    ``./report-<name>`` unless ``out_dir`` says where; an ``out_dir`` URI gets the report written in a local
    temporary folder, then copied there.
    """
    if out_dir is not None and is_remote(out_dir):
        target = user_folder(out_dir)
        with tempfile.TemporaryDirectory(prefix="report.") as local:
            build_report(path, out_dir=local, examples=examples, resamples=resamples)
            target.upload(local)
        return target
    experiment = load_experiment(path)
    out = Path(out_dir) if out_dir else _default_out(path)
    out.mkdir(parents=True, exist_ok=True)
    doc = Document(f"Search report: {_experiment_name(path)}")
    problems: list[str] = []
    _settings_section(doc, experiment)
    trials = experiment.trials
    scored = trials.dropna(subset=["objective"]) if "objective" in trials else trials.head(0)
    if scored.empty:
        problems.append("no trial reported an epoch, so there is nothing to compare")
    else:
        datasets = _rebuild(experiment, scored, problems)
        _comparison_section(doc, experiment, scored)
        comparisons_section(doc, experiment)
        _what_mattered_section(doc, experiment, scored, datasets, out, problems, resamples=resamples)
        chosen = delivered_section(doc, experiment, datasets, out, problems, examples=examples, resamples=resamples)
        chosen += candidates_section(doc, experiment, scored, datasets, out, problems, resamples=resamples)
        _validation_vs_test_section(doc, chosen, out, resamples=resamples, folds=experiment.folds)
        if not experiment.epochs.empty and "val_recall" in experiment.epochs:
            metric = experiment.metric if experiment.metric in experiment.epochs else "val_recall"
            fig = all_trials_figure(experiment.epochs, metric=metric, title=f"{metric} of every trial per epoch")
            doc.heading("All trials")
            doc.figure(_save(fig, out / "all_trials.png"),
                       "validation metric of every trial per epoch; a dot marks where a trial stopped")
    if problems:
        doc.heading("What could not be shown")
        doc.bullets(problems)
    (out / "report.md").write_text(doc.to_markdown())
    (out / "report.html").write_text(doc.to_html())
    return out


def _settings_section(doc: Document, experiment: Experiment) -> None:
    s = experiment.settings
    trials = experiment.trials
    ended = trials["ended_by"].value_counts().to_dict() if "ended_by" in trials else {}
    finished = ended.get("patience", 0) + ended.get("max_epochs", 0)
    doc.heading("Search")
    space = s.get("space", {})
    fixed = s.get("fixed", {})
    floor = fixed.get("min_balanced_accuracy", DEFAULTS["min_balanced_accuracy"])
    doc.bullets([
        f"experiment: {experiment.path}",
        f"space: {space.get('name', '?')} ({len(trials)} trials), at most {space.get('max_epochs', '?')} epochs each",
        f"scheduler: {s.get('scheduler', '?')}, search: {s.get('search', '?')}",
        f"metric: {experiment.metric} ({experiment.mode}); {guard_in_words(experiment.metric, floor)}",
        f"data: {_data_name(s.get('data', {}).get('source'))}",
        f"trials: {finished} finished (early stopping {ended.get('patience', 0)}, epoch budget "
        f"{ended.get('max_epochs', 0)}), {ended.get('scheduler', 0)} stopped by the scheduler, "
        f"{ended.get('diverged', 0)} diverged, {ended.get('error', 0)} errored",
    ])
    if not s:
        doc.paragraph("search.json is missing: settings and data options are unknown.")


def _plain_metric(metric: str) -> str:
    """``val_balanced_accuracy`` -> ``balanced accuracy``."""
    return metric.removeprefix("val_").replace("_", " ")


def _guard(experiment: Experiment) -> float:
    return experiment.settings.get("fixed", {}).get("min_balanced_accuracy", DEFAULTS["min_balanced_accuracy"])


def _comparison_section(doc: Document, experiment: Experiment, scored: pd.DataFrame) -> None:
    doc.heading("Best configuration per architecture x strategy x augmentation (validation)")
    best = best_per_group(scored, mode=experiment.mode)
    varied = [c for c in best if c.startswith("config/") and scored[c].astype(str).nunique() > 1]
    keys = [c for c in varied if c in GROUPS]
    shown = keys + [c for c in SHOWN_METRICS if c in best]
    # A guarded-out trial's objective (metric - 2) would read like a metric: say why it ranks last instead.
    table = best[shown].assign(objective=objective_in_words(best, min_balanced_accuracy=_guard(experiment)))
    others = [c for c in varied if c not in GROUPS]
    if others:  # the full space varies 4 more settings: one column that wraps, not 4 that widen the table
        table.insert(len(keys), "settings", [", ".join(f"{short_name(c)} {row[c]}" for c in others)
                                             for _, row in best.iterrows()])
    if "ended_by" in table:
        table["ended_by"] = table["ended_by"].str.replace("_", " ")  # "max epochs" wraps in a narrow column
    if {"kept_epoch", "epochs"} <= set(table.columns):  # one column instead of two: narrower
        kept = [f"{k:.0f} / {e:.0f}" if pd.notna(k) else f"- / {e:.0f}" for k, e in zip(table["kept_epoch"],
                                                                                        table["epochs"], strict=True)]
        table = table.drop(columns=["epochs"]).assign(kept_epoch=kept).rename(
            columns={"kept_epoch": "kept epoch / epochs"})
    doc.table(table.rename(columns=short_name))
    diverged = scored[scored["ended_by"].eq("diverged")] if "ended_by" in scored else scored.head(0)
    if len(diverged):
        named = [", ".join(f"{short_name(c)} {row[c]}" for c in varied) or str(row["trial_id"])
                 for _, row in diverged.iterrows()]
        doc.paragraph(f"Diverged ({len(diverged)} of {len(scored)} trials; a loss or score that was not finite, "
                      f"so they rank last): {'; '.join(named)}.")


def _rebuild(experiment: Experiment, scored: pd.DataFrame, problems: list[str]) -> dict[int, Dataset] | None:
    """The experiment's data at every size its architectures used; None (and a problem listed) if it cannot be."""
    architectures = set(scored.get(ARCHITECTURE, pd.Series([DEFAULTS["architecture"]])))
    try:
        return rebuild_datasets(experiment.settings, architectures, experiment.data_record)
    except DataChangedError:
        raise  # scoring other images than the search saw would mislead: the report refuses
    except InputError as err:
        problems.append(f"the experiment's data cannot be rebuilt, so no model is scored: {err}")
        return None


def _what_mattered_section(doc: Document, experiment: Experiment, scored: pd.DataFrame,
                           datasets: dict[int, Dataset] | None, out: Path, problems: list[str], *,
                           resamples: int) -> None:
    """The study's question at a glance: importance, strategy x architecture, configurations, Pareto front."""
    doc.heading("What mattered")
    importance = dimension_importance(scored, mode=experiment.mode)
    if importance.empty:
        doc.paragraph("Importance: the search varied no dimension, or fewer than two trials finished.")
    else:
        doc.paragraph(f"Importance of each dimension for the objective (Optuna's fANOVA evaluator on the "
                      f"{len(scored)} trials with a result, stopped by the scheduler or not, normalised to sum to 1; "
                      "with few trials it is rough):")
        doc.table(importance, digits=2)
        doc.figure(_save(importance_figure(importance), out / "importance.png"),
                   "importance of each dimension for the objective (fANOVA)")
    metric = experiment.metric
    column = f"kept_{metric}"
    if {STRATEGY, ARCHITECTURE} <= set(scored.columns) and column in scored:
        cells = best_cells(scored, metric=column, mode=experiment.mode)
        note = _cell_intervals(cells, experiment, datasets, problems, metric=metric, resamples=resamples)
        doc.figure(_save(strategy_panel_figure(cells, metric_label=f"validation {_plain_metric(metric)}"),
                         out / "strategy_panel.png"),
                   f"best trial per strategy x architecture: validation {_plain_metric(metric)}; {note}")
    dims = [f"config/{d}" for d in importance["dimension"]] if not importance.empty else None
    if dims is None or dims:
        doc.figure(_save(parallel_coordinates_figure(scored, dimensions=dims), out / "parallel_coordinates.png"),
                   "configurations vs objective, one line per trial (dimensions by importance); "
                   "grey dashes: failed the guard")
    if {"kept_val_recall", "kept_val_precision"} <= set(scored.columns):
        doc.figure(_save(pareto_figure(scored), out / "pareto.png"),
                   "validation recall vs precision of every trial; the line joins the Pareto front")
        front = scored[pareto_front(scored)].sort_values("kept_val_recall", ascending=False)
        keys = [c for c in front if c.startswith("config/") and scored[c].astype(str).nunique() > 1]
        shown = ["trial_id", *keys, "kept_val_recall", "kept_val_precision", "kept_val_balanced_accuracy"]
        doc.paragraph("Trials on the Pareto front (no other trial has both a higher validation recall and precision):")
        doc.table(front[shown].rename(columns=short_name))


def _cell_intervals(cells: pd.DataFrame, experiment: Experiment, datasets: dict[int, Dataset] | None,
                    problems: list[str], *, metric: str, resamples: int) -> str:
    """Add ``low``/``high`` to each cell: its kept model reloaded and bootstrapped on validation. Returns a caption note.

    A grid without folds or seeds has one trial per cell, so the only
    uncertainty to show is that of the validation split itself.
    """
    name = metric.removeprefix("val_")
    if name not in BOOTSTRAP_METRICS:
        return f"no interval for {metric}"
    if datasets is None:
        return "no interval: the data cannot be rebuilt"
    lows, highs = [], []
    for trial_id in cells["trial_id"]:
        checkpoint = experiment.checkpoints.get(trial_id)
        try:
            kept = load_kept_model(checkpoint) if checkpoint is not None else None
        except (OSError, KeyError, RuntimeError):
            kept = None
        if kept is None:
            problems.append(f"trial {trial_id}: no readable checkpoint, so its cell has no interval")
            lows.append(float("nan"))
            highs.append(float("nan"))
            continue
        val = kept.validation_scores(datasets[kept.image_size].val)
        _, low, high = bootstrap_metric(val.y_true, val.y_score, metric=metric, n_resamples=resamples)
        lows.append(low)
        highs.append(high)
    cells["low"], cells["high"] = lows, highs
    return f"bars: 95 % bootstrap intervals over validation images ({resamples} stratified resamples)"


def validation_vs_test(chosen: list[Scored], *, resamples: int = 1000) -> pd.DataFrame:
    """One row per chosen model, metric and split: estimate and 95 % bootstrap interval (argmax decision)."""
    rows = []
    for label, trial_id, val, test in chosen:
        for split, scores in (("validation", val), ("test", test)):
            intervals = bootstrap_intervals(scores.y_true, scores.predictions(), scores.y_score, n_resamples=resamples)
            for metric in VAL_TEST_METRICS:
                rows.append({"model": f"{label} ({trial_id})", "metric": metric, "split": split,
                             "positives": int(scores.y_true.sum()), **intervals.loc[metric].to_dict()})
    return pd.DataFrame(rows)


def _validation_vs_test_section(doc: Document, chosen: list[Scored], out: Path, *,
                                resamples: int, folds: int = 1) -> None:
    if not chosen:
        return
    frame = validation_vs_test(chosen, resamples=resamples)
    doc.heading("Validation estimate vs test result")
    doc.paragraph("Each chosen model was picked on validation; its test result is the honest one. A gap wider than "
                  "the intervals means the validation estimate was optimistic (the best of many trials on one split).")
    if folds > 1:
        doc.paragraph(f"Trials were judged out-of-fold over the train split ({folds} folds); validation here is the "
                      "mean of the fold models (as delivered) on the validation split, which none of them trained "
                      "on, and test is scored by that same mean.")
    positives = int(frame.loc[frame["split"] == "validation", "positives"].min())
    if positives < FEW_VALIDATION_POSITIVES:
        doc.paragraph(f"Warning: the validation split holds only {positives} minority examples (fewer than "
                      f"{FEW_VALIDATION_POSITIVES}): one example moves validation recall by {1 / positives:.3f}, so "
                      "the choice between close configurations is mostly noise.")
    cells = frame.assign(text=[f"{e:.3f} [{lo:.2f}, {hi:.2f}]" for e, lo, hi in
                               zip(frame["estimate"], frame["low"], frame["high"], strict=True)])
    table = cells.pivot_table(index="model", columns=["metric", "split"], values="text", aggfunc="first", sort=False)
    table.columns = [f"{metric} {split}" for metric, split in table.columns]
    counts = frame.pivot_table(index="model", columns="split", values="positives", aggfunc="first", sort=False)
    table.insert(0, "positives val / test", [f"{counts.loc[m, 'validation']} / {counts.loc[m, 'test']}"
                                              for m in table.index])
    doc.table(table.reset_index())
    doc.figure(_save(validation_vs_test_figure(frame), out / "validation_vs_test.png"),
               "validation estimate (circles) next to the test result (squares) of each chosen model")


def _data_name(source: str | None) -> str:
    if source is None:
        return "embedded digits"
    return "embedded PneumoniaMNIST subsample" if source == PNEUMONIA else source


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _default_out(path: str) -> Path:
    if "://" in str(path):  # a bucket's experiment: a folder here, named after it
        return Path.cwd() / f"report-{_experiment_name(path)}"
    return Path(path).expanduser()


def _experiment_name(path: str) -> str:
    """The experiment's folder name; of a URI, its path's last part (``s3://b/results/exp?endpoint_override=...``: exp)."""
    return user_folder(path).name if is_remote(path) else Path(str(path).rstrip("/")).name
