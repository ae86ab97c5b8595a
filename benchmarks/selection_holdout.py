"""Does the chosen configuration's validation estimate hold on the test split? Selection rules compared.

One search (grid, --keep-weights above its trial count, so every trial's
kept model stays) on a real image set, then every trial's kept model is
scored on the test split. For each selection rule (the guarded objective of
one metric, ties broken as ``search.results.rank_trials`` breaks them) it
prints the chosen trial, its validation estimate of minority recall at the
cut it is delivered with (0.5 for the study's metrics; the operating
threshold for ``*_at_recall``), the test recall at that same cut, the gap,
its test AUC, and the best test AUC of any trial. Run on the data as it is,
and with its validation split cut to a tenth (stratified), the regime of a
small real set.

``--splits iid`` first pools the archive's three splits and draws them again,
stratified, at their original sizes, so that the test split comes from the
same distribution as train and val. PneumoniaMNIST's official test split does
not (a different prevalence, and validation recall overstated test recall under
every rule): the two together tell the noise of selection, which a rule can
fix, from a shift of the test split, which no estimate made on train+val sees.

    python benchmarks/selection_holdout.py --data ../shared/data/pneumoniamnist.npz [--max-epochs 12] [--folds 1 5] \
        [--splits official iid] [--variants given small]

With ``--folds 1 K`` the search runs once judged on validation and once with
K-fold cross-validation over train+val: there the estimate is out-of-fold (each
image scored by the fold model that did not train on it), the operating
threshold is set on those scores, and the test scores are the fold models' mean.

The test split is read here for every trial, which a search never does: this
is a study of the selection rules, not a way to choose.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from search.results import rank_trials
from search.run import build_parser, data_options, prepare_inputs, run, settings_from_args
from trainables import classification_metrics, guarded_objective, load_kept_model

RULES = ("val_recall", "val_f2", "val_auc", "val_ap", "val_specificity_at_recall", "val_precision_at_recall")
SPLITS = ("train", "val", "test")
OPERATING = ("val_specificity_at_recall", "val_precision_at_recall")  # delivered at the validation threshold


def with_small_validation(source: Path, folder: Path, fraction: float, seed: int) -> Path:
    """A copy of a MedMNIST-style npz whose validation split keeps ``fraction`` of each class."""
    rng = np.random.default_rng(seed)
    with np.load(source) as archive:
        arrays = dict(archive)
    labels = arrays["val_labels"].reshape(-1)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), max(2, round(fraction * np.sum(labels == c))),
                                              replace=False) for c in np.unique(labels)]))
    arrays["val_images"], arrays["val_labels"] = arrays["val_images"][keep], arrays["val_labels"][keep]
    path = folder / f"{source.stem}-val{fraction:g}.npz"
    np.savez(path, **arrays)
    return path


def with_iid_splits(source: Path, folder: Path, seed: int, sizes: tuple[int, int, int] | None = None) -> Path:
    """A copy of a MedMNIST-style npz whose splits are drawn again from their pool, stratified.

    At their own sizes, or at ``sizes`` (train, val, test), which may leave
    part of the pool out: a small real set's regime drawn from a large one.
    """
    with np.load(source) as archive:
        arrays = dict(archive)
    images = np.concatenate([arrays[f"{s}_images"] for s in SPLITS])
    labels = np.concatenate([arrays[f"{s}_labels"].reshape(-1) for s in SPLITS])
    sizes = sizes or tuple(len(arrays[f"{s}_labels"]) for s in SPLITS)
    pool = np.arange(len(labels))
    if sum(sizes) < len(labels):
        pool, _ = train_test_split(pool, train_size=sum(sizes), stratify=labels, random_state=seed)
    rest, test = train_test_split(pool, test_size=sizes[2], stratify=labels[pool], random_state=seed)
    train, val = train_test_split(rest, test_size=sizes[1], stratify=labels[rest], random_state=seed)
    for split, index in zip(SPLITS, (train, val, test)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[index], labels[index]
    path = folder / f"{source.stem}-iid{'-'.join(map(str, sizes))}.npz"
    np.savez(path, **arrays)
    return path


def score_every_trial(folder: Path, datasets: dict) -> pd.DataFrame:
    """trials.csv with each trial's kept model scored on validation (out-of-fold with folds) and test.

    Recall at 0.5 and at the trial's delivered operating threshold, and AUC, on both.
    """
    trials = pd.read_csv(folder / "trials.csv")
    rows = []
    for trial in trials.itertuples():
        (checkpoint,) = Path(trial.path).glob("checkpoint_*")
        kept = load_kept_model(checkpoint)
        data = datasets[kept.image_size]
        val, test = kept.validation_scores(data.val), kept.scores(data.test)
        rows.append({
            "trial_id": trial.trial_id,
            "val_recall_at_threshold": float(np.mean(val.y_score[val.y_true == 1] >= kept.threshold)),
            "estimate_auc": classification_metrics(val.y_true, val.predictions(), val.y_score)["auc"],
            "test_recall": float(np.mean(test.predictions()[test.y_true == 1])),
            "test_recall_at_threshold": float(np.mean(test.y_score[test.y_true == 1] >= kept.threshold)),
            "test_auc": classification_metrics(test.y_true, test.predictions(), test.y_score)["auc"],
        })
    return trials.merge(pd.DataFrame(rows), on="trial_id")


def choose(scored: pd.DataFrame, metric: str, *, min_balanced_accuracy: float) -> pd.Series:
    """The trial a search ranking by ``metric`` chooses (its guarded objective, ties as rank_trials breaks them)."""
    kept = scored.rename(columns=lambda c: c.removeprefix("kept_"))
    objective = [guarded_objective(row, metric=metric, mode="max", min_balanced_accuracy=min_balanced_accuracy)
                 for row in kept.to_dict("records")]
    return rank_trials(scored.assign(objective=objective), mode="max").iloc[0]


def report(variant: str, scored: pd.DataFrame, *, min_balanced_accuracy: float) -> None:
    """Per rule: the chosen trial, its estimate of minority recall and its test recall at the delivered cut, AUCs."""
    best_auc = scored["test_auc"].max()
    print(f"\n{variant}: {len(scored)} trials; best test AUC of any trial {best_auc:.3f}")
    print(f"  {'rule':28s} {'chosen':34s} {'est.':>6s} {'test':>6s} {'gap':>6s} "
          f"{'AUC est.':>8s} {'test AUC':>8s} {'vs best':>8s}")
    for metric in RULES:
        row = choose(scored, metric, min_balanced_accuracy=min_balanced_accuracy)
        operating = metric in OPERATING
        estimate = row["val_recall_at_threshold"] if operating else row["kept_val_recall"]
        test = row["test_recall_at_threshold"] if operating else row["test_recall"]
        chosen = f"{row['config/architecture']}/{row['config/strategy']}/aug={row['config/augment']}"
        print(f"  {metric:28s} {chosen:34s} {estimate:6.3f} {test:6.3f} {test - estimate:+6.3f} "
              f"{row['estimate_auc']:8.3f} {row['test_auc']:8.3f} {row['test_auc'] - best_auc:+8.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--space", default="quick")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--small-val-fraction", type=float, default=0.1)
    parser.add_argument("--target-recall", type=float, default=0.9)
    parser.add_argument("--min-balanced-accuracy", type=float, default=0.6)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 5], help="run the search once per value")
    parser.add_argument("--variants", choices=("given", "small"), nargs="+", default=["given", "small"])
    parser.add_argument("--splits", choices=("official", "iid"), nargs="+", default=["official"],
                        help="the archive's own splits, or drawn again from their pool (iid)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for splits in args.splits:
            data = Path(args.data) if splits == "official" else with_iid_splits(Path(args.data), Path(tmp), seed=0)
            for variant in args.variants:  # in the order given
                if variant == "given":
                    sources[f"{splits} splits, validation as given"] = data
                else:
                    sources[f"{splits} splits, validation cut to {args.small_val_fraction:g}"] = with_small_validation(
                        data, Path(tmp), args.small_val_fraction, seed=0)
        for number, ((variant, source), folds) in enumerate(itertools.product(sources.items(), args.folds)):
            flags = build_parser().parse_args([
                "--space", args.space, "--data", str(source), "--image-size", str(args.image_size),
                "--max-epochs", str(args.max_epochs), "--storage-path", tmp,
                "--name", f"holdout-{number}", "--folds", str(folds),
                "--keep-weights", "100000", "--target-recall", str(args.target_recall),
                "--min-balanced-accuracy", str(args.min_balanced_accuracy)])
            settings = settings_from_args(flags)
            datasets, states, size = prepare_inputs(settings, flags)
            print(next(iter(datasets.values())).summary(folds=folds), flush=True)
            folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                         data_options=data_options(flags))
            label = f"{variant}, " + ("judged on validation" if folds == 1 else f"{folds}-fold cross-validation")
            report(label, score_every_trial(folder, datasets), min_balanced_accuracy=args.min_balanced_accuracy)


if __name__ == "__main__":
    main()
