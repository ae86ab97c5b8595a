"""What changing the objective from val_recall to val_specificity_at_recall does to the chosen model.

For a finished experiment (``search.run`` wrote ``trials.csv``, ``search.json``
and kept every trial's weights: ``--keep-weights`` above the trial count), it
ranks the trials under each metric's guarded objective (ties broken as
``search.results.rank_trials`` breaks them: kept validation balanced accuracy,
then AUC, then trial id), reloads each chosen trial's kept model and scores it
once on the test split, at 0.5 and at its delivered operating threshold. Under
``--scheduler grid`` every trial runs the same whatever ``--metric`` is, so one
grid experiment answers for both metrics; under ASHA the metric drives
stopping, so pass one experiment per metric with ``--only-own-metric``: each is
ranked by the metric it ran with.

    python benchmarks/objective_choice.py /tmp/objbench/<grid-name> [...]
    python benchmarks/objective_choice.py --only-own-metric /tmp/objbench/<asha-name> [...]

Prints one markdown row per (experiment, metric) and writes them as JSON with
``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.data_record import load_experiment_data
from search.results import rank_trials
from trainables import guarded_objective, load_kept_model, worst_objective

METRICS = ("val_recall", "val_specificity_at_recall")


def choose(trials: pd.DataFrame, metric: str, *, min_balanced_accuracy: float) -> pd.Series:
    """The trial a search ranking by ``metric`` chooses: guarded objective of the kept state, ties as rank_trials."""
    kept = trials.rename(columns=lambda c: c.removeprefix("kept_"))
    objective = [worst_objective("max") if row.get("ended_by") == "diverged" else
                 guarded_objective(row, metric=metric, mode="max", min_balanced_accuracy=min_balanced_accuracy)
                 for row in kept.to_dict("records")]
    return rank_trials(trials.assign(objective=objective), mode="max").iloc[0]


def test_metrics(kept, datasets: dict) -> dict[str, float]:
    """Test AUC, recall and precision at 0.5, recall and specificity at the delivered threshold."""
    from trainables import classification_metrics

    scores = kept.scores(datasets[kept.image_size].test)
    truth = scores.y_true.astype(bool)
    at_half = classification_metrics(scores.y_true, scores.predictions(), scores.y_score)
    called = scores.y_score >= kept.threshold
    return {
        "test_auc": at_half["auc"],
        "test_recall@0.5": at_half["recall"],
        "test_precision@0.5": at_half["precision"],
        "threshold": kept.threshold,
        "test_recall@thr": float(np.mean(called[truth])),
        "test_specificity@thr": float(np.mean(~called[~truth])),
    }


def describe(row: pd.Series) -> str:
    keys = [c for c in row.index if c.startswith("config/") and c.removeprefix("config/") in
            ("architecture", "strategy", "augment")]
    return "/".join(str(row[k]) for k in keys)


def rows_for(folder: Path, *, only_own_metric: bool) -> list[dict[str, Any]]:
    settings = json.loads((folder / "search.json").read_text())
    trials = pd.read_csv(folder / "trials.csv")
    floor = float(settings["fixed"].get("min_balanced_accuracy", 0.6))
    own = settings["metric"]
    architectures = settings["space"]["dimensions"].get("architecture", ["cnn"])
    datasets = load_experiment_data(architectures, settings["data"])
    out = []
    for metric in ([own] if only_own_metric else METRICS):
        row = choose(trials, metric, min_balanced_accuracy=floor)
        (checkpoint,) = Path(row["path"]).glob("checkpoint_*")
        kept = load_kept_model(checkpoint)
        record = {
            "experiment": folder.name, "scheduler": settings["scheduler"], "ran_with": own, "ranked_by": metric,
            "trial_id": row["trial_id"], "config": describe(row), "ended_by": row["ended_by"],
            "epochs": int(row["epochs"]), "kept_epoch": int(row.get("kept_epoch", -1)),
            "val_recall": row["kept_val_recall"], "val_balanced_accuracy": row["kept_val_balanced_accuracy"],
            "val_specificity_at_recall": row["kept_val_specificity_at_recall"],
            **test_metrics(kept, datasets),
        }
        best = folder / "best.json"
        if metric == own and best.exists():  # the run's own choice: check it is the one found here
            chosen = json.loads(best.read_text())
            record["matches_best_json"] = Path(chosen["trial_path"]).name == Path(row["path"]).name
        out.append(record)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--only-own-metric", action="store_true",
                        help="rank each experiment only by the metric it ran with (ASHA)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = [r for folder in args.folders for r in rows_for(folder, only_own_metric=args.only_own_metric)]
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.to_string(float_format=lambda v: f"{v:.3f}" if not math.isnan(v) else "nan"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
