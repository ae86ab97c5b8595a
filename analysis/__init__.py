"""Reports of finished experiments: comparison tables, test scores, curves and Grad-CAMs."""

from analysis.evaluation import KeptModel, Scores, load_kept_model, rebuild_datasets
from analysis.experiment import Experiment, ExperimentError, load_epochs, load_experiment, load_trials
from analysis.figures import all_trials_figure, learning_curves_figure
from analysis.gradcam import gradcam_figure, pick_examples
from analysis.importance import dimension_importance
from analysis.reporting import build_report
from analysis.study import (
    best_cells,
    importance_figure,
    parallel_coordinates_figure,
    pareto_figure,
    pareto_front,
    strategy_panel_figure,
    validation_vs_test_figure,
)
from analysis.tables import (
    best_per_group,
    bootstrap_intervals,
    bootstrap_metric,
    confusion_frame,
    objective_in_words,
    report_frame,
    report_text,
)

__all__ = [
    "Experiment", "ExperimentError", "KeptModel", "Scores", "all_trials_figure", "best_cells", "best_per_group",
    "bootstrap_intervals", "bootstrap_metric", "build_report",
    "confusion_frame", "dimension_importance", "gradcam_figure", "importance_figure",
    "learning_curves_figure", "load_epochs", "load_experiment", "load_kept_model", "load_trials",
    "objective_in_words", "parallel_coordinates_figure", "pareto_figure", "pareto_front", "pick_examples",
    "rebuild_datasets", "report_frame", "report_text", "strategy_panel_figure",
    "validation_vs_test_figure",
]
