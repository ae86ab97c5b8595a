"""Does the recall promised at the operating threshold hold on new images? Two threshold rules compared.

A threshold set on a handful of minority images promises too much. With P
positives and a target recall r, the plain rule calls positive every score at
or above the ceil(r * P)-th highest positive score: exactly r of the
positives it was set on. A new positive is exchangeable with those P, so it
lands above the m-th highest of them with probability m / (P + 1): the plain
rule's expected recall on new images is ceil(r * P) / (P + 1), under r for
small P. ``trainables.operating_point`` takes m = ceil(r * (P + 1)) instead
(the split-conformal choice), whose expected recall is at least r.

One model is trained (``run_trial``, no Ray); then, many times over, a
calibration set with P positives is drawn, both rules set their threshold on
it, and the recall and specificity at that threshold are measured on images
the draw left out. ``--splits iid`` pools the archive's three splits and
draws them again at their sizes (``selection_holdout.with_iid_splits``); the
calibration sets are drawn from validation + test and judged on the rest.
``--splits official`` draws them from validation and judges on the official
test split, whose shift no threshold set on train+val can see.

    python benchmarks/threshold_holdout.py --data ../shared/data/pneumoniamnist.npz [--splits iid] \
        [--positives 14 50 100] [--draws 2000] [--target-recall 0.9]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from selection_holdout import with_iid_splits
from trainables import TrialConfig, get_spec, load_datasets, run_trial, score_split
from trainables.metrics import roc_auc
from trainables.operating import operating_point


def plain_threshold(y_true: np.ndarray, y_score: np.ndarray, target_recall: float) -> float:
    """The threshold that reaches ``target_recall`` on the positives it is set on (the rule before)."""
    positives = np.sort(y_score[y_true == 1])[::-1]
    return float(positives[math.ceil(target_recall * len(positives) - 1e-9) - 1])


def at_threshold(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Recall and specificity of calling ``score >= threshold`` positive."""
    called = y_score >= threshold
    return float(called[y_true == 1].mean()), float(1 - called[y_true == 0].mean())


def draw(rng: np.random.Generator, y_true: np.ndarray, positives: int) -> np.ndarray:
    """A calibration mask: ``positives`` positives and negatives in the pool's proportion, drawn at random."""
    pos, neg = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    chosen = np.r_[rng.choice(pos, positives, replace=False),
                   rng.choice(neg, round(positives * len(neg) / len(pos)), replace=False)]
    mask = np.zeros(len(y_true), dtype=bool)
    mask[chosen] = True
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--splits", choices=("iid", "official"), default="iid")
    parser.add_argument("--architecture", default="cnn_bn")
    parser.add_argument("--strategy", default="weighted_loss")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--target-recall", type=float, default=0.9)
    parser.add_argument("--positives", type=int, nargs="+", default=[14, 50, 100])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(args.data)
        path = with_iid_splits(source, Path(tmp), args.seed) if args.splits == "iid" else source
        dataset = load_datasets(str(path), image_sizes=[args.image_size])[args.image_size]
    print(dataset.summary(), flush=True)
    cfg = TrialConfig.from_dict({"architecture": args.architecture, "strategy": args.strategy, "lr": 1e-3,
                                 "augment": True, "seed": args.seed, "max_epochs": args.max_epochs})
    started = time.perf_counter()
    (trained,) = run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=lambda metrics, state: None)
    val, test = score_split(trained.model, cfg, dataset.val), score_split(trained.model, cfg, dataset.test)
    print(f"{cfg.architecture}/{cfg.strategy}, kept epoch {trained.stopper.best_epoch}, trained in "
          f"{time.perf_counter() - started:.0f} s; validation AUC {roc_auc(val.y_true, val.y_score):.3f}, "
          f"test AUC {roc_auc(test.y_true, test.y_score):.3f}", flush=True)

    if args.splits == "iid":  # validation and test are exchangeable: calibrate on a draw of both, judge on the rest
        pool_true, pool_score = np.r_[val.y_true, test.y_true], np.r_[val.y_score, test.y_score]
    else:
        pool_true, pool_score = val.y_true, val.y_score
    rules = {"plain: ceil(r*P)": lambda t, s: plain_threshold(t, s, args.target_recall),
             "conformal: ceil(r*(P+1))":
                 lambda t, s: operating_point(t, s, target_recall=args.target_recall)["threshold_at_recall"]}
    rng = np.random.default_rng(args.seed)
    print(f"\ntarget recall {args.target_recall}; {args.draws} calibration draws per P; judged on "
          f"{'the images each draw left out' if args.splits == 'iid' else 'the official test split'}")
    print(f"{'P':>4s} {'rule':26s} {'recall':>7s} {'vs target':>9s} {'draws under':>11s} {'specificity':>11s}")
    for positives in args.positives:
        measured = {name: [] for name in rules}
        for _ in range(args.draws):
            mask = draw(rng, pool_true, positives)
            judge_true, judge_score = (pool_true[~mask], pool_score[~mask]) if args.splits == "iid" else \
                (test.y_true, test.y_score)
            for name, rule in rules.items():
                measured[name].append(at_threshold(judge_true, judge_score, rule(pool_true[mask], pool_score[mask])))
        for name, values in measured.items():
            recall, specificity = np.array(values).T
            print(f"{positives:4d} {name:26s} {recall.mean():7.3f} {recall.mean() - args.target_recall:+9.3f} "
                  f"{np.mean(recall < args.target_recall):11.1%} {specificity.mean():11.3f}", flush=True)


if __name__ == "__main__":
    main()
