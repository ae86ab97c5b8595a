"""How often does an imbalance strategy collapse to calling one class? The study's ``both`` against ours.

The study's ``both`` applied oversampling (batches drawn 50/50) and the
balanced loss weights in full, which balances the classes twice; ours does
half of each (trainables.imbalance). Each strategy trains the same grid of
trials with ``run_trial`` (no Ray): the study's CNN with and without
BatchNorm x learning rate x augmentation x seeds, on real images (the
embedded PneumoniaMNIST subsample by default). A trial *collapsed* when its
kept model fails the degenerate-model guard (validation balanced accuracy
under 0.6) or calls over 95 % (or under 5 %) of validation images positive.
Prints, per strategy: trials, collapsed trials, median kept epoch, mean kept
balanced accuracy and AUC on validation.

The training recipe is the other suspect (the issue's trials stopped at the
earliest epoch patience allows, on a validation loss that jumped from epoch to
epoch): ``--lr-schedule``, ``--min-epochs`` and ``--min-delta`` set it for
every trial, and the table adds how many trials stopped at that earliest
epoch, the median epoch-to-epoch jump of validation loss, and the kept
models' balanced accuracy and AUC on the test split (read here to judge the
recipe, never by a search).

``--sizes 546 78 156`` draws a stratified set of those split sizes from a
MedMNIST-style npz (``selection_holdout.with_iid_splits``): the issue's
780-image ultrasound regime, with 21 minority images in validation, drawn
from PneumoniaMNIST. ``--architectures`` sets the grid's models.

    python benchmarks/collapse_rate.py [--data pneumonia] [--max-epochs 20] [--seeds 2] [--strategies both ...] \
        [--lr-schedule cosine] [--min-epochs 8] [--min-delta 0.01] [--sizes 546 78 156] [--architectures resnet18]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainables import (
    DEFAULTS,
    PNEUMONIA,
    ImbalanceSetup,
    TrialConfig,
    classification_metrics,
    get_spec,
    list_strategies,
    load_datasets,
    register_strategy,
    run_trial,
    score_split,
)
from selection_holdout import with_iid_splits
from trainables.imbalance import balanced_class_weights, balanced_sample_weights

STUDY_BOTH = "both_as_in_the_study"
GUARD = 0.6


@register_strategy(STUDY_BOTH)
def both_in_full(labels: np.ndarray) -> ImbalanceSetup:
    """The study's combination: balanced loss weights on top of balanced oversampling."""
    return ImbalanceSetup(class_weights=balanced_class_weights(labels), sample_weights=balanced_sample_weights(labels))


def collapsed(kept: dict[str, float]) -> bool:
    """Whether a kept model is degenerate: under the guard, or calling (almost) every image one class."""
    rate = kept.get("val_predicted_positive_rate", np.nan)
    return not kept.get("val_balanced_accuracy", 0.0) >= GUARD or not 0.05 <= rate <= 0.95


def stopped_at_earliest(epochs: int, *, stopped_early: bool, patience: int, min_epochs: int) -> bool:
    """Whether early stopping ended the trial at the first epoch its rule allows."""
    return stopped_early and epochs == max(patience + 1, min_epochs)


def median_jump(val_losses: list[float]) -> float:
    """The median absolute change of validation loss from one epoch to the next."""
    return float(np.median(np.abs(np.diff(val_losses)))) if len(val_losses) > 1 else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=PNEUMONIA)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--strategies", nargs="+", default=None,
                        help=f"default: every registered strategy, then {STUDY_BOTH}")
    parser.add_argument("--lr-schedule", default=DEFAULTS["lr_schedule"])
    parser.add_argument("--min-epochs", type=int, default=DEFAULTS["min_epochs"])
    parser.add_argument("--min-delta", type=float, default=DEFAULTS["min_delta"])
    parser.add_argument("--sizes", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--architectures", nargs="+", default=["cnn", "cnn_bn"])
    args = parser.parse_args()
    recipe = {"lr_schedule": args.lr_schedule, "min_epochs": args.min_epochs, "min_delta": args.min_delta}
    print(f"recipe: {recipe}, patience {args.patience}, up to {args.max_epochs} epochs", flush=True)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        data = str(with_iid_splits(Path(args.data), Path(tmp), 0, tuple(args.sizes))) if args.sizes else args.data
        dataset = load_datasets(data, image_sizes=[args.image_size])[args.image_size]
    print(dataset.summary(), flush=True)
    grid = list(itertools.product(args.architectures, (1e-3, 1e-4), (False, True), range(args.seeds)))
    print(f"{'strategy':22s} {'trials':>6s} {'collapsed':>9s} {'kept epoch':>10s} {'earliest':>8s} "
          f"{'loss jump':>9s} {'bal. acc.':>9s} {'AUC':>6s} {'test b.a.':>9s} {'test AUC':>8s} {'s':>5s}")
    strategies = args.strategies or [s for s in list_strategies() if s != STUDY_BOTH] + [STUDY_BOTH]
    for strategy in strategies:
        started, kept = time.perf_counter(), []
        for architecture, lr, augment, seed in grid:
            cfg = TrialConfig.from_dict({"architecture": architecture, "strategy": strategy, "lr": lr,
                                         "augment": augment, "seed": seed, "batch_size": 32, **recipe,
                                         "patience": args.patience, "max_epochs": args.max_epochs})
            rows = []
            (run,) = run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=lambda metrics, state: rows.append(metrics))
            test = score_split(run.model, cfg, dataset.test)
            kept.append({**run.stopper.best_metrics, "epoch": run.stopper.best_epoch,
                         "earliest": stopped_at_earliest(len(rows), stopped_early=rows[-1]["stopped_early"],
                                                         patience=args.patience, min_epochs=args.min_epochs),
                         "jump": median_jump([r["val_loss"] for r in rows if "val_loss" in r]),
                         **classification_metrics(test.y_true, test.predictions(), test.y_score, prefix="test_")})
        mean = {key: np.mean([k.get(key, np.nan) for k in kept])
                for key in ("val_balanced_accuracy", "val_auc", "test_balanced_accuracy", "test_auc")}
        print(f"{strategy:22s} {len(kept):6d} {sum(map(collapsed, kept)):9d} "
              f"{np.median([k['epoch'] for k in kept]):10.1f} {sum(k['earliest'] for k in kept):8d} "
              f"{np.median([k['jump'] for k in kept]):9.3f} {mean['val_balanced_accuracy']:9.3f} "
              f"{mean['val_auc']:6.3f} {mean['test_balanced_accuracy']:9.3f} {mean['test_auc']:8.3f} "
              f"{time.perf_counter() - started:5.0f}", flush=True)


if __name__ == "__main__":
    main()
