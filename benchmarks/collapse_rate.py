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

    python benchmarks/collapse_rate.py [--data pneumonia] [--max-epochs 20] [--seeds 2] [--strategies both ...]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from trainables import (
    PNEUMONIA,
    ImbalanceSetup,
    TrialConfig,
    list_strategies,
    load_datasets,
    register_strategy,
    run_trial,
)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=PNEUMONIA)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--strategies", nargs="+", default=None,
                        help=f"default: every registered strategy, then {STUDY_BOTH}")
    args = parser.parse_args()
    torch.set_num_threads(2)
    dataset = load_datasets(args.data, image_sizes=[args.image_size])[args.image_size]
    print(dataset.summary(), flush=True)
    grid = list(itertools.product(("cnn", "cnn_bn"), (1e-3, 1e-4), (False, True), range(args.seeds)))
    print(f"{'strategy':22s} {'trials':>6s} {'collapsed':>9s} {'kept epoch':>10s} {'bal. acc.':>9s} {'AUC':>6s} "
          f"{'s':>5s}")
    strategies = args.strategies or [s for s in list_strategies() if s != STUDY_BOTH] + [STUDY_BOTH]
    for strategy in strategies:
        started, kept = time.perf_counter(), []
        for architecture, lr, augment, seed in grid:
            cfg = TrialConfig.from_dict({"architecture": architecture, "strategy": strategy, "lr": lr,
                                         "augment": augment, "seed": seed, "batch_size": 32,
                                         "patience": args.patience, "max_epochs": args.max_epochs})
            (run,) = run_trial(cfg, dataset, report=lambda metrics, state: None)
            kept.append({**run.stopper.best_metrics, "epoch": run.stopper.best_epoch})
        print(f"{strategy:22s} {len(kept):6d} {sum(map(collapsed, kept)):9d} "
              f"{np.median([k['epoch'] for k in kept]):10.1f} "
              f"{np.mean([k.get('val_balanced_accuracy', np.nan) for k in kept]):9.3f} "
              f"{np.mean([k.get('val_auc', np.nan) for k in kept]):6.3f} {time.perf_counter() - started:5.0f}",
              flush=True)


if __name__ == "__main__":
    main()
