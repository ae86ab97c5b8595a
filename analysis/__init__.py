"""Reports of finished experiments: comparison tables, test scores, curves and Grad-CAMs."""

from analysis.evaluation import Scores, load_kept_model, rebuild_datasets, score_split
from analysis.experiment import Experiment, ExperimentError, load_epochs, load_experiment, load_trials
from analysis.gradcam import gradcam_figure, gradcam_maps, pick_examples
from analysis.reporting import build_report, chosen_trials
from analysis.tables import (
    best_per_group,
    bootstrap_intervals,
    choose_threshold,
    confusion_frame,
    report_frame,
    report_text,
)

__all__ = [
    "Experiment", "ExperimentError", "Scores", "best_per_group", "bootstrap_intervals", "build_report",
    "choose_threshold", "chosen_trials", "confusion_frame", "gradcam_figure", "gradcam_maps", "load_epochs",
    "load_experiment", "load_kept_model", "load_trials", "pick_examples", "rebuild_datasets", "report_frame",
    "report_text", "score_split",
]
