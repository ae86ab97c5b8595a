"""Does the fold ensemble's operating threshold keep its recall promise on new images? Two rules compared.

A trial with ``folds`` = K trains K fold models on the stratified folds of
the train split and is delivered as the mean probability of the K models.
Two places to set its threshold (``trainables.operating``, split conformal:
the ceil(r * (P + 1))-th highest positive score) are compared on the same
trained ensemble:

* ``ensemble on val`` (what the search delivers): the ensemble's own scores
  on the validation split, which no fold model trained, stopped or was chosen
  on, so they are exchangeable with new images' scores;
* ``pooled OOF`` (the former rule): the pooled out-of-fold scores, each train
  image scored by the one fold model that did not train on it. Those are
  single models' scores, on another scale than their mean's.

Per draw (seed 0..D-1) PneumoniaMNIST's three splits are pooled and a small
set is drawn from them, stratified, at ``--sizes`` (train, val, test;
``selection_holdout.with_iid_splits``); one trial (``run_trial``, no Ray)
trains its K fold models, and the ensemble and its delivered threshold are
taken from the deliverable of its last report, as the search stores them.
Both thresholds are judged on every pool image the draw did not use
(thousands: their recall is close to the true recall on new images).

The left-out images are the pool minus the drawn images as multisets of
(pixels, label): ``with_iid_splits`` discards them, and PneumoniaMNIST holds a
few exact duplicates, so each drawn image removes one matching copy from the
pool. They are decoded by ``load_datasets`` as the test split of a second
archive whose train and val splits are the draw's own (so the positive class
and the resizing are the same as in training).

    python benchmarks/ensemble_threshold.py --data ../shared/data/pneumoniamnist.npz [--draws 6] \
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
from trainables import TrialConfig, get_spec, kept_model_from, load_datasets, run_trial
from trainables.metrics import roc_auc
from trainables.operating import set_operating_point

RULES = {"ensemble on val": "val", "pooled OOF": "oof"}


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
    runs = run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=report)
    seconds = time.perf_counter() - started
    kept = kept_model_from(delivered["kept"], device=torch.device("cpu"))
    calibration, oof, new = kept.validation_scores(dataset.val), kept.out_of_fold, kept.scores(judge.test)
    thresholds = {"val": set_operating_point(calibration.y_true, calibration.y_score, target_recall=args.target_recall,
                                             scores="validation").threshold,
                  "oof": set_operating_point(oof.y_true, oof.y_score, target_recall=args.target_recall,
                                             scores="out-of-fold").threshold}
    if kept.threshold != thresholds["val"]:
        raise RuntimeError(f"delivered threshold {kept.threshold} != the ensemble's on val {thresholds['val']}")
    row = {"draw": draw, "P_val": int(calibration.y_true.sum()), "P_oof": int(oof.y_true.sum()), "seconds": seconds,
           "kept_epoch": float(np.mean([run.stopper.best_epoch for run in runs])),
           "oof_auc": roc_auc(oof.y_true, oof.y_score), "ens_auc": roc_auc(new.y_true, new.y_score),
           "n_new": len(new.y_true), "P_new": int(new.y_true.sum()),
           "new_min": float(new.y_score.min()), "new_max": float(new.y_score.max())}
    for key, threshold in thresholds.items():
        row[f"{key}_threshold"] = threshold
        row[f"{key}_recall"], row[f"{key}_spec"] = at_threshold(new.y_true, new.y_score, threshold)
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
    header = (f"{'draw':>4s} {'epoch':>5s} {'OOF AUC':>7s} {'ens AUC':>7s} {'new P':>5s} | "
              f"{'val P':>5s} {'thresh':>7s} {'recall':>6s} {'spec':>5s} | "
              f"{'OOF P':>5s} {'thresh':>7s} {'recall':>6s} {'spec':>5s} | {'s':>4s}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for draw in range(args.draws):
            row = one_draw(args, draw, Path(tmp))
            if draw == 0:
                print(f"\n{args.architecture}/{args.strategy}, {args.folds} folds, {args.max_epochs} epochs at most, "
                      f"target recall {r}; the delivered fold ensemble (mean of the {args.folds} fold models) judged "
                      "on the pool images the draw left out, at the threshold set by each rule:")
                print(f"{'':38s}| ensemble on val (delivered)  | pooled OOF (former)")
                print(header)
            rows.append(row)
            print(f"{row['draw']:4d} {row['kept_epoch']:5.1f} {row['oof_auc']:7.3f} {row['ens_auc']:7.3f} "
                  f"{row['P_new']:5d} | {row['P_val']:5d} {row['val_threshold']:7.4f} {row['val_recall']:6.3f} "
                  f"{row['val_spec']:5.3f} | {row['P_oof']:5d} {row['oof_threshold']:7.4f} {row['oof_recall']:6.3f} "
                  f"{row['oof_spec']:5.3f} | {row['seconds']:4.0f}", flush=True)

    def column(key: str) -> np.ndarray:
        return np.array([row[key] for row in rows])

    print(f"\nsummary over {len(rows)} draws, target recall {r} (recall on the left-out images)")
    print(f"  {'rule':28s} {'mean recall':>11s} {'vs target':>9s} {'min':>6s} {'draws under':>11s} "
          f"{'mean spec':>9s} {'spec 0':>6s}")
    for name, key in RULES.items():
        recall, specificity = column(f"{key}_recall"), column(f"{key}_spec")
        under, everything = int(np.sum(recall < r)), int(np.sum(specificity == 0))
        print(f"  {name:28s} {recall.mean():11.3f} {recall.mean() - r:+9.3f} {recall.min():6.3f} "
              f"{f'{under}/{len(rows)} ({under / len(rows):.0%})':>11s} {specificity.mean():9.3f} "
              f"{f'{everything}/{len(rows)}':>6s}")
    print("  spec 0: draws whose threshold calls every new image positive")

if __name__ == "__main__":
    main()
