"""The report's sections on models: the delivered one, as best.json records it, and the others for comparison.

The delivered model is the one ``search.deliverable`` chose on validation
and recorded in ``best.json``, at the operating threshold recorded there: the
report sets no threshold of its own. Its Grad-CAM comes from it as delivered
(every fold model of an ensemble). The best trial of each other architecture
is shown after it, marked as not for choosing: the choice was made on
validation, and picking among them on test would make the test result the
optimistic best of several.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.document import Document
from analysis.experiment import Experiment
from analysis.figures import confusion_figure, learning_curves_figure, pr_figure, roc_figure
from analysis.gradcam import gradcam_figure
from analysis.tables import bootstrap_intervals, confusion_frame, report_text
from search.deliverable import calibration_scores
from search.results import rank_trials
from trainables import Dataset, KeptModel, Scores, classification_metrics, load_kept_model
from trainables.classifier import Classifier
from trainables.embedded import PNEUMONIA_SOURCE
from trainables.operating import OperatingPoint

# (label, trial_id, validation scores, test scores) of each model the report scored on test
Scored = tuple[str, str, Scores, Scores]
READ_ERRORS = (OSError, KeyError, RuntimeError)  # a deleted, truncated or foreign checkpoint


def delivered_section(doc: Document, experiment: Experiment, datasets: dict[int, Dataset] | None, out: Path,
                      problems: list[str], *, examples: int, resamples: int) -> list[Scored]:
    """The delivered model at its recorded threshold and at 0.5, its estimates, its test check and its Grad-CAM."""
    best = experiment.best
    if datasets is None:
        return []
    if not best or "deliverable" not in best:
        problems.append("best.json is missing (the search did not finish) or was written by an older version, "
                        "so there is no delivered model to describe")
        return []
    deliverable = best["deliverable"]
    kept = _load_members(experiment, [m["trial"] for m in deliverable["members"]], problems)
    if kept is None:
        return []
    point = OperatingPoint.from_json(best["operating_point"])
    classifier = Classifier.combine([k.classifier for k in kept], point)
    dataset = datasets[classifier.image_size]
    val = calibration_scores(kept, dataset)
    test = Scores(dataset.test.labels, classifier.predict_proba(dataset.test.images))
    trial = deliverable["members"][0]["trial"]
    doc.heading(f"Delivered model: {deliverable['summary']}")
    trials = ", ".join(m["trial"] for m in deliverable["members"])
    doc.paragraph(f"Chosen on {experiment.metric} ({_judged_on(deliverable['folds'])}); trial(s) {trials}. "
                  f"This is the model `search.export` and `search.predict` use, at its {point.describe()}.")
    est = best["estimates"]
    doc.paragraph(f"What validation says of it ({est['on']} scores of {est['images']} images, {est['positives']} "
                  f"positive; 95 % bootstrap intervals, {est['resamples']} stratified resamples):")
    doc.table(estimates_frame(best["estimates"]), index=True)
    _test_tables(doc, test, dataset.class_names, point.threshold, resamples)
    if "test_check" in best:
        check = best["test_check"]["words"]
        shift = not best["test_check"]["within"] and deliverable.get("data_source") == PNEUMONIA_SOURCE
        doc.paragraph(f"The recall promise on test: {check}." + (
            " The embedded set's test images come from PneumoniaMNIST's official test split, which is shifted from "
            "its train and validation splits (docs/benchmarks.md)." if shift else ""))
    _unseen_test(doc, dataset, test, point.threshold)
    _model_figures(doc, experiment, "delivered", trial, val, test, point.threshold, dataset, out)
    fig = gradcam_figure(classifier, dataset.test, test.predictions(point.threshold), per_kind=examples,
                         title="delivered model: Grad-CAM of the positive class on test images")
    if fig is None:
        problems.append("delivered model: no true positive, false negative or false positive on test for Grad-CAM")
    else:
        members = len(classifier.members)
        doc.figure(_save(fig, out / "delivered_gradcam.png"),
                   f"delivered model: Grad-CAM ({', '.join(sorted({m.architecture for m in classifier.members}))}"
                   f"{f', all {members} members' if members > 1 else ''}) at the operating threshold; "
                   "rows: true positives, false negatives, false positives")
    return [("delivered", trial, val, test)]


def candidates_section(doc: Document, experiment: Experiment, scored: pd.DataFrame,
                       datasets: dict[int, Dataset] | None, out: Path, problems: list[str], *,
                       resamples: int) -> list[Scored]:
    """The best trial of each architecture the deliverable is not, scored on test and marked not for choosing."""
    if datasets is None or "config/architecture" not in scored:
        return []
    delivered = {m["trial"] for m in ((experiment.best or {}).get("deliverable") or {}).get("members", [])}
    ranked = rank_trials(scored, mode=experiment.mode)
    candidates = [(f"best {a}", group["trial_id"].iloc[0]) for a, group in ranked.groupby("config/architecture",
                                                                                          sort=False)
                  if group["trial_id"].iloc[0] not in delivered]
    if not candidates:
        return []
    doc.heading("Other architectures, for comparison only")
    doc.paragraph("Not for choosing: the delivered model was chosen on validation. Choosing among these on their "
                  "test results would make the test result the optimistic best of several draws.")
    shown = []
    for label, trial_id in candidates:
        kept = _load_members(experiment, [trial_id], problems, label=label)
        if kept is None:
            continue
        dataset = datasets[kept[0].image_size]
        val, test = kept[0].validation_scores(dataset.val), kept[0].scores(dataset.test)
        doc.heading(f"{label.capitalize()} (not for choosing): trial {trial_id}", level=3)
        _test_tables(doc, test, dataset.class_names, kept[0].threshold, resamples)
        _model_figures(doc, experiment, label, trial_id, val, test, kept[0].threshold, dataset, out)
        shown.append((f"{label} (not for choosing)", trial_id, val, test))
    return shown


def _unseen_test(doc: Document, dataset: Dataset, test: Scores, threshold: float) -> None:
    """Where some test images have a (near-)duplicate in train+val (an archive's own splits), the result without them."""
    seen = dataset.test_seen()
    if not seen.any():
        return
    rows = {}
    for name, mask in (("all test images", np.ones(len(seen), bool)), ("without a duplicate in train+val", ~seen)):
        part = Scores(test.y_true[mask], test.y_score[mask])
        at = classification_metrics(part.y_true, part.predictions(threshold), part.y_score, prefix="")
        rows[name] = {"images": int(mask.sum()), "positives": int(part.y_true.sum()), "recall": at["recall"],
                      "precision": at["precision"], "auc": at["auc"]}
    doc.paragraph(f"{int(seen.sum())} of the {len(seen)} test images have a (near-)identical image in train or "
                  "validation: the data's own splits put them there. The test result with and without them "
                  f"(at the operating threshold {threshold:.4f}):")
    doc.table(pd.DataFrame(rows).T, index=True)


def estimates_frame(estimates: dict) -> pd.DataFrame:
    """best.json's estimates as a table: one row per metric, with its interval."""
    rows = {key.replace("_", " "): {"estimate": v["estimate"], "low": v["low"], "high": v["high"]}
            for key, v in estimates.items() if isinstance(v, dict)}
    return pd.DataFrame(rows).T


def _load_members(experiment: Experiment, trial_ids: Sequence[str], problems: list[str], *,
                  label: str = "delivered model") -> list[KeptModel] | None:
    kept = []
    for trial_id in trial_ids:
        checkpoint = experiment.checkpoints.get(trial_id)
        if checkpoint is None:
            problems.append(f"{label} ({trial_id}): no checkpoint, so it is not scored on test")
            return None
        try:
            kept.append(load_kept_model(checkpoint, device="cpu"))
        except READ_ERRORS as err:
            problems.append(f"{label} ({trial_id}): checkpoint {checkpoint.path} cannot be read "
                            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}), "
                            "so it is not scored on test")
            return None
    return kept


def _judged_on(folds: int) -> str:
    return "validation" if folds == 1 else f"{folds}-fold cross-validation, out-of-fold scores"


def _test_tables(doc: Document, test: Scores, class_names: Sequence[str], threshold: float, resamples: int) -> None:
    if threshold == threshold:  # not NaN
        doc.paragraph(f"Test split at the operating threshold (positive when probability >= {threshold:.4f}):")
        doc.code(report_text(test.y_true, test.predictions(threshold), class_names))
        doc.table(confusion_frame(test.y_true, test.predictions(threshold), class_names), index=True, digits=0)
    doc.paragraph("Test split at 0.5 (argmax), the study's decision:")
    doc.code(report_text(test.y_true, test.predictions(), class_names))
    decision = test.predictions(threshold) if threshold == threshold else test.predictions()
    intervals = bootstrap_intervals(test.y_true, decision, test.y_score, n_resamples=resamples)
    doc.paragraph(f"95 % bootstrap intervals on the test split ({resamples} stratified resamples, "
                  f"{'at the operating threshold' if threshold == threshold else 'argmax'}):")
    doc.table(intervals, index=True)


def _model_figures(doc: Document, experiment: Experiment, label: str, trial_id: str, val: Scores, test: Scores,
                   threshold: float, dataset: Dataset, out: Path) -> None:
    slug = label.replace(" ", "_")
    decision = test.predictions(threshold) if threshold == threshold else test.predictions()
    at = f"at {threshold:.4f}" if threshold == threshold else "argmax"
    doc.figure(_save(confusion_figure(test.y_true, decision, dataset.class_names,
                                      title=f"{label}: test confusion matrix ({at})"), out / f"{slug}_confusion.png"),
               f"{label}: test confusion matrix at the operating threshold ({at})")
    curves = {"validation": (val.y_true, val.y_score), "test": (test.y_true, test.y_score)}
    doc.figure(_save(pr_figure(curves, title=f"{label}: precision-recall"), out / f"{slug}_pr.png"),
               f"{label}: precision-recall curves with average precision; dashed: prevalence")
    doc.figure(_save(roc_figure(curves, title=f"{label}: ROC"), out / f"{slug}_roc.png"),
               f"{label}: ROC curves with AUC")
    epochs = experiment.epochs[experiment.epochs["trial_id"] == trial_id] if not experiment.epochs.empty else None
    if epochs is not None and len(epochs):
        doc.figure(_save(learning_curves_figure(epochs, title=f"{label}: learning curves"),
                         out / f"{slug}_learning_curves.png"), f"{label}: losses and validation recall per epoch")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
