"""Does the out-of-fold threshold keep its recall promise on the fold ensemble as delivered, on new images?

A trial with ``folds`` = K trains K fold models on the stratified folds of
train+val. Its operating threshold is set (``trainables.operating_point``,
split conformal: the ceil(r * (P + 1))-th highest positive score) on the
pooled out-of-fold scores, each image scored by the one fold model that did
not train on it, but the model it is delivered with is the mean probability
of the K fold models (``KeptModel.scores``). The ensemble's scores are not
exchangeable with a single fold model's held-out scores (averaging changes
their spread), so the promise made on the latter need not hold on the former.

Per draw (seed 0..D-1) PneumoniaMNIST's three splits are pooled and a small
set is drawn from them, stratified, at ``--sizes`` (train, val, test;
``selection_holdout.with_iid_splits``); one trial (``run_trial``, no Ray)
trains its K fold models on train+val, and the threshold and the ensemble are
taken from the deliverable of its last report, exactly as the search stores
them (the threshold is checked against
``delivered_threshold(kept_summary(runs))``). It is then judged at that
threshold on every pool image the draw did not use (thousands: their recall
is close to the true recall on new images), and on the draw's own test split.
For contrast, the same threshold is applied to fold 0's model alone.

The left-out images are the pool minus the drawn images as multisets of
(pixels, label): ``with_iid_splits`` discards them, and PneumoniaMNIST holds a
few exact duplicates, so each drawn image removes one matching copy from the
pool. They are decoded by ``load_datasets`` as the test split of a second
archive whose train and val splits are the draw's own (so the positive class
and the resizing are the same as in training).

    python benchmarks/ensemble_threshold.py --data ../shared/data/pneumoniamnist.npz [--draws 8] \
        [--max-epochs 12] [--folds 5] [--target-recall 0.9] [--sizes 546 78 156]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from selection_holdout import SPLITS, with_iid_splits
from trainables import TrialConfig, kept_model_from, load_datasets, run_trial, score_split
from trainables.metrics import roc_auc
from trainables.train import delivered_threshold, kept_summary


def pooled(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and flat labels of an archive's three splits, in order."""
    with np.load(path) as archive:
        return (np.concatenate([archive[f"{s}_images"] for s in SPLITS]),
                np.concatenate([archive[f"{s}_labels"].reshape(-1) for s in SPLITS]))


def left_out(source: Path, drawn: Path) -> np.ndarray:
    """Indices into ``source``'s pooled images of those ``drawn`` did not take (multiset difference)."""
    images, labels = pooled(source)
    taken = Counter((x.tobytes(), int(y)) for x, y in zip(*pooled(drawn)))
    needed = sum(taken.values())
    keep = []
    for i, (x, y) in enumerate(zip(images, labels)):
        key = (x.tobytes(), int(y))
        if taken[key] > 0:
            taken[key] -= 1
        else:
            keep.append(i)
    if sum(taken.values()) or len(keep) != len(labels) - needed:
        raise RuntimeError("the drawn images are not a sub-multiset of the pool")
    return np.asarray(keep)


def judging_archive(source: Path, drawn: Path, folder: Path) -> Path:
    """A copy of ``drawn`` whose test split is every pool image it left out."""
    images, labels = pooled(source)
    keep = left_out(source, drawn)
    with np.load(drawn) as archive:
        arrays = dict(archive)
    arrays["test_images"], arrays["test_labels"] = images[keep], labels[keep]
    path = folder / f"{drawn.stem}-left-out.npz"
    np.savez(path, **arrays)
    return path


def at_threshold(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Recall and specificity of calling ``score >= threshold`` positive (the project's rule)."""
    called = y_score >= threshold
    return float(called[y_true == 1].mean()), float(1 - called[y_true == 0].mean())


def one_draw(args: argparse.Namespace, draw: int, tmp: Path) -> dict[str, float]:
    source = Path(args.data)
    drawn = with_iid_splits(source, tmp, draw, sizes=tuple(args.sizes))
    judge_path = judging_archive(source, drawn, tmp)
    dataset = load_datasets(str(drawn), image_sizes=[args.image_size])[args.image_size]
    judge = load_datasets(str(judge_path), image_sizes=[args.image_size])[args.image_size]
    if not (np.array_equal(judge.train.labels, dataset.train.labels)
            and np.array_equal(judge.train.images, dataset.train.images)):
        raise RuntimeError("the judging archive was decoded differently from the training one")
    if draw == 0:
        print(dataset.summary(folds=args.folds), flush=True)
        print(f"judged on the {len(judge.test)} images each draw leaves out "
              f"({judge.test.class_counts()[1]} positive in draw 0)", flush=True)

    cfg = TrialConfig.from_dict({"architecture": args.architecture, "strategy": args.strategy, "augment": True,
                                 "lr": 1e-3, "seed": draw, "max_epochs": args.max_epochs, "folds": args.folds,
                                 "target_recall": args.target_recall})
    delivered: dict = {}

    def report(metrics: dict, state: dict | None) -> None:
        if state is not None:
            delivered["kept"] = state["kept"]

    started = time.perf_counter()
    runs = run_trial(cfg, dataset, report=report)
    seconds = time.perf_counter() - started
    summary = kept_summary(runs, target_recall=args.target_recall)
    threshold = delivered_threshold(summary)
    kept = kept_model_from(delivered["kept"], device=torch.device("cpu"))
    if kept.threshold != threshold:
        raise RuntimeError(f"delivered threshold {kept.threshold} != kept_summary's {threshold}")
    oof = kept.out_of_fold

    ensemble, ensemble_test = kept.scores(judge.test), kept.scores(dataset.test)
    single = score_split(kept.models[0], cfg, judge.test)
    row = {"draw": draw, "P": int(oof.y_true.sum()), "threshold": threshold, "seconds": seconds,
           "kept_epoch": float(np.mean([run.stopper.best_epoch for run in runs])),
           "oof_recall": at_threshold(oof.y_true, oof.y_score, threshold)[0],
           "oof_auc": roc_auc(oof.y_true, oof.y_score), "ens_auc": roc_auc(ensemble.y_true, ensemble.y_score),
           "fold0_auc": roc_auc(single.y_true, single.y_score),
           "ens_test_recall": at_threshold(ensemble_test.y_true, ensemble_test.y_score, threshold)[0],
           "n_new": len(ensemble.y_true), "P_new": int(ensemble.y_true.sum())}
    row["ens_recall"], row["ens_spec"] = at_threshold(ensemble.y_true, ensemble.y_score, threshold)
    row["fold0_recall"], row["fold0_spec"] = at_threshold(single.y_true, single.y_score, threshold)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs=3, default=[546, 78, 156], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--architecture", default="cnn_bn")
    parser.add_argument("--strategy", default="weighted_loss")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--target-recall", type=float, default=0.9)
    args = parser.parse_args()
    torch.set_num_threads(2)

    r = args.target_recall
    header = (f"{'draw':>4s} {'P':>4s} {'thresh':>7s} {'epoch':>5s} {'OOF rec':>7s} {'OOF AUC':>7s} | "
              f"{'new n':>5s} {'new P':>5s} {'ens rec':>7s} {'ens spec':>8s} {'ens AUC':>7s} | "
              f"{'f0 rec':>6s} {'f0 spec':>7s} {'f0 AUC':>6s} | {'test rec':>8s} {'s':>4s}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for draw in range(args.draws):
            row = one_draw(args, draw, Path(tmp))
            if draw == 0:
                print(f"\n{args.architecture}/{args.strategy}, {args.folds} folds, {args.max_epochs} epochs at most; "
                      f"threshold set on the out-of-fold scores for target recall {r}; ens = mean of the "
                      f"{args.folds} fold models (as delivered), f0 = fold 0's model alone, same threshold; "
                      f"new = pool images the draw left out; test = the draw's own {args.sizes[2]}-image test split")
                print(header)
            rows.append(row)
            print(f"{row['draw']:4d} {row['P']:4d} {row['threshold']:7.4f} {row['kept_epoch']:5.1f} "
                  f"{row['oof_recall']:7.3f} {row['oof_auc']:7.3f} | {row['n_new']:5d} {row['P_new']:5d} "
                  f"{row['ens_recall']:7.3f} {row['ens_spec']:8.3f} {row['ens_auc']:7.3f} | "
                  f"{row['fold0_recall']:6.3f} {row['fold0_spec']:7.3f} {row['fold0_auc']:6.3f} | "
                  f"{row['ens_test_recall']:8.3f} {row['seconds']:4.0f}", flush=True)

    def column(key: str) -> np.ndarray:
        return np.array([row[key] for row in rows])

    print(f"\nsummary over {len(rows)} draws, target recall {r} (recall measured on the left-out images)")
    print(f"  {'model at the OOF threshold':30s} {'mean recall':>11s} {'vs target':>9s} {'min':>6s} "
          f"{'draws under':>11s} {'mean spec':>9s}")
    for name, prefix in (("fold ensemble (as delivered)", "ens"), ("fold 0's model alone", "fold0")):
        recall, specificity = column(f"{prefix}_recall"), column(f"{prefix}_spec")
        under = int(np.sum(recall < r))
        print(f"  {name:30s} {recall.mean():11.3f} {recall.mean() - r:+9.3f} {recall.min():6.3f} "
              f"{f'{under}/{len(rows)} ({under / len(rows):.0%})':>11s} {specificity.mean():9.3f}")
    test = column("ens_test_recall")
    print(f"  ensemble on the draws' own test splits: mean recall {test.mean():.3f}, min {test.min():.3f}, "
          f"{int(np.sum(test < r))}/{len(rows)} under; ensemble minus fold 0 recall, mean "
          f"{np.mean(column('ens_recall') - column('fold0_recall')):+.3f}")


if __name__ == "__main__":
    main()
