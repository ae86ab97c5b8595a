"""The report of one experiment: the study's tables, curves and Grad-CAMs as report.md and report.html.

Configurations are chosen on validation metrics only; the test split is read
once per chosen model, to report it. Whatever cannot be shown (a missing
checkpoint, data that is no longer there) is listed in the report, and the
rest is still written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from analysis.document import Document
from analysis.evaluation import Scores, load_kept_model, rebuild_datasets, score_split
from analysis.experiment import Experiment, load_experiment
from search.data_record import DataChangedError
from analysis.figures import all_trials_figure, confusion_figure, learning_curves_figure, pr_figure, roc_figure
from analysis.gradcam import gradcam_figure
from analysis.tables import (
    best_per_group,
    bootstrap_intervals,
    choose_threshold,
    confusion_frame,
    report_text,
)
from search.results import rank_trials
from trainables import DEFAULTS, InputError

SHOWN_METRICS = ("objective", "kept_val_recall", "kept_val_precision", "kept_val_f1", "kept_val_balanced_accuracy",
                 "kept_val_auc", "kept_val_ap", "kept_epoch", "epochs", "ended_by")


def build_report(path: str, *, out_dir: str | Path | None = None, examples: int = 4, resamples: int = 1000) -> Path:
    """Write report.md, report.html and the PNGs for the experiment at ``path``; return the folder."""
    experiment = load_experiment(path)
    out = Path(out_dir) if out_dir else _default_out(path)
    out.mkdir(parents=True, exist_ok=True)
    doc = Document(f"Search report: {Path(str(path).rstrip('/')).name}")
    problems: list[str] = []
    _settings_section(doc, experiment)
    trials = experiment.trials
    scored = trials.dropna(subset=["objective"]) if "objective" in trials else trials.head(0)
    if scored.empty:
        problems.append("no trial reported an epoch, so there is nothing to compare")
    else:
        _comparison_section(doc, experiment, scored)
        _chosen_models_section(doc, experiment, scored, out, problems, examples=examples, resamples=resamples)
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


def chosen_trials(trials: pd.DataFrame, *, mode: str) -> list[tuple[str, str]]:
    """(label, trial_id) of the best trial overall and the best of each architecture, by validation."""
    ranked = rank_trials(trials, mode=mode)
    chosen = [("best overall", ranked["trial_id"].iloc[0])]
    if "config/architecture" in ranked:
        for architecture, group in ranked.groupby("config/architecture", sort=False):
            chosen.append((f"best {architecture}", group["trial_id"].iloc[0]))
    return chosen


def _settings_section(doc: Document, experiment: Experiment) -> None:
    s = experiment.settings
    trials = experiment.trials
    ended = trials["ended_by"].value_counts().to_dict() if "ended_by" in trials else {}
    finished = ended.get("patience", 0) + ended.get("max_epochs", 0)
    doc.heading("Search")
    space = s.get("space", {})
    fixed = s.get("fixed", {})
    doc.bullets([
        f"experiment: {experiment.path}",
        f"space: {space.get('name', '?')} ({len(trials)} trials), at most {space.get('max_epochs', '?')} epochs each",
        f"scheduler: {s.get('scheduler', '?')}, search: {s.get('search', '?')}",
        f"metric: {experiment.metric} ({experiment.mode}), guard: validation balanced accuracy >= "
        f"{fixed.get('min_balanced_accuracy', DEFAULTS['min_balanced_accuracy'])}",
        f"data: {s.get('data', {}).get('source') or 'embedded digits'}",
        f"trials: {finished} finished (early stopping {ended.get('patience', 0)}, epoch budget "
        f"{ended.get('max_epochs', 0)}), {ended.get('scheduler', 0)} stopped by the scheduler, "
        f"{ended.get('error', 0)} errored",
    ])
    if not s:
        doc.paragraph("search.json is missing: settings and data options are unknown.")


def _comparison_section(doc: Document, experiment: Experiment, scored: pd.DataFrame) -> None:
    doc.heading("Best configuration per architecture x strategy x augmentation (validation)")
    best = best_per_group(scored, mode=experiment.mode)
    keys = [c for c in best if c.startswith("config/") and scored[c].astype(str).nunique() > 1]
    shown = keys + [c for c in SHOWN_METRICS if c in best]
    doc.table(best[shown].rename(columns=lambda c: c.removeprefix("config/")))


def _chosen_models_section(doc: Document, experiment: Experiment, scored: pd.DataFrame, out: Path,
                           problems: list[str], *, examples: int, resamples: int) -> None:
    chosen = chosen_trials(scored, mode=experiment.mode)
    by_id = scored.set_index("trial_id")
    architectures = {by_id.loc[t].get("config/architecture", DEFAULTS["architecture"]) for _, t in chosen}
    try:
        datasets = rebuild_datasets(experiment.settings, architectures, experiment.data_record)
    except DataChangedError:
        raise  # scoring other images than the search saw would mislead: the report refuses
    except InputError as err:
        problems.append(f"the experiment's data cannot be rebuilt, so no model is scored on test: {err}")
        return
    class_names = next(iter(datasets.values())).class_names
    guard = experiment.settings.get("fixed", {}).get("min_balanced_accuracy", DEFAULTS["min_balanced_accuracy"])
    for label, trial_id in chosen:
        checkpoint = experiment.checkpoints.get(trial_id)
        if checkpoint is None:
            problems.append(f"{label} ({trial_id}): no checkpoint, so it is not scored on test")
            continue
        try:
            model, cfg, size = load_kept_model(checkpoint)
        except (OSError, KeyError, RuntimeError) as err:  # deleted, truncated or foreign checkpoint
            problems.append(f"{label} ({trial_id}): checkpoint {checkpoint.path} cannot be read "
                            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}), "
                            "so it is not scored on test")
            continue
        dataset = datasets[size]
        val, test = score_split(model, cfg, dataset.val), score_split(model, cfg, dataset.test)
        threshold = choose_threshold(val.y_true, val.y_score, metric=experiment.metric, min_balanced_accuracy=guard)
        slug = label.replace(" ", "_")
        doc.heading(f"{label.capitalize()}: trial {trial_id}")
        config = {k.removeprefix("config/"): v for k, v in by_id.loc[trial_id].items() if k.startswith("config/")}
        doc.paragraph("configuration: " + ", ".join(f"{k}={v}" for k, v in config.items()))
        _test_tables(doc, test, class_names, threshold, resamples)
        doc.figure(_save(confusion_figure(test.y_true, test.predictions(), class_names,
                                          title=f"{label}: test confusion matrix"), out / f"{slug}_confusion.png"),
                   f"{label}: test confusion matrix (argmax)")
        curves = {"validation": (val.y_true, val.y_score), "test": (test.y_true, test.y_score)}
        doc.figure(_save(pr_figure(curves, title=f"{label}: precision-recall"), out / f"{slug}_pr.png"),
                   f"{label}: precision-recall curves with average precision; dashed: prevalence")
        doc.figure(_save(roc_figure(curves, title=f"{label}: ROC"), out / f"{slug}_roc.png"),
                   f"{label}: ROC curves with AUC")
        epochs = experiment.epochs[experiment.epochs["trial_id"] == trial_id] if not experiment.epochs.empty else None
        if epochs is not None and len(epochs):
            doc.figure(_save(learning_curves_figure(epochs, title=f"{label}: learning curves"),
                             out / f"{slug}_learning_curves.png"), f"{label}: losses and validation recall per epoch")
        fig = gradcam_figure(model, cfg, dataset.test, test.predictions(), per_kind=examples,
                             title=f"{label}: Grad-CAM of the positive class on test images")
        if fig is None:
            problems.append(f"{label}: no true positive, false negative or false positive on test for Grad-CAM")
        else:
            doc.figure(_save(fig, out / f"{slug}_gradcam.png"),
                       f"{label}: Grad-CAM ({cfg.architecture}); rows: true positives, false negatives, false positives")


def _test_tables(doc: Document, test: Scores, class_names: Sequence[str], threshold: float | None,
                 resamples: int) -> None:
    doc.paragraph("Test split, classification report at the default decision (argmax):")
    doc.code(report_text(test.y_true, test.predictions(), class_names))
    doc.table(confusion_frame(test.y_true, test.predictions(), class_names), index=True, digits=0)
    if threshold is not None:
        doc.paragraph(f"Test split at the threshold chosen on validation for the metric "
                      f"(positive when probability >= {threshold:.4f}):")
        doc.code(report_text(test.y_true, test.predictions(threshold), class_names))
    intervals = bootstrap_intervals(test.y_true, test.predictions(), test.y_score, n_resamples=resamples)
    doc.paragraph(f"95 % bootstrap intervals on the test split ({resamples} stratified resamples, argmax decision):")
    doc.table(intervals, index=True)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _default_out(path: str) -> Path:
    if "://" in str(path):
        return Path.cwd() / f"report-{Path(str(path).rstrip('/')).name}"
    return Path(path).expanduser()
