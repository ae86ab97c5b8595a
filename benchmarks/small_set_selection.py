"""Small real sets: does the chosen model's cross-validated AUC hold on test, and which CV figure ranks better?

Per draw (``--draw-seeds``, default 0..D-1) PneumoniaMNIST's three splits are
pooled and a small set is drawn from them, stratified, at ``--sizes`` (train,
val, test; ``selection_holdout.with_iid_splits``). The images the draw leaves
out (thousands; ``ensemble_threshold.judging_archive``) are a second, large
judge set. On each draw a whole search runs (``search.run.run``: ``--space
quick``, ``--folds 5``, ``--keep-weights 100`` so that every trial's kept fold
models stay), in two variants:

* ``grouped``: the data as loaded, where each Split's ``groups`` names its
  (near-)identical images and ``Dataset.folds`` keeps a group in one fold
  (StratifiedGroupKFold, used when the train split holds a duplicate);
* ``ungrouped``: every Split's ``groups`` set to None (``dataclasses.replace``
  on the prepared datasets before the search, which ships them to the Ray
  workers pickled), so that the folds are plain StratifiedKFold.

Where the draw's train split holds no duplicate both variants get the very
same folds (``fold_indices`` falls back to StratifiedKFold when every group is
one image), so the ungrouped search would repeat the grouped one: it is not
rerun (its rows are the grouped rows, marked ``same_folds``) unless
``--rerun-identical``.

Every trial's delivered model (the mean of its fold models) is scored on the
draw's test split and on the judge set. Reported:

(a) the chosen trial's (the search's own choice, by its ranking metric, as in
    ``best.json``) cross-validated AUC, as the fold mean (``kept_val_auc``:
    each fold model's AUC on its held-out fold, averaged) and pooled
    (``kept_oof_auc``: the AUC of all out-of-fold scores together), against
    its test AUC (and judge AUC);
(c) per ranking metric (``val_auc``, ``oof_auc``, ``val_specificity_at_recall``,
    ``oof_specificity_at_recall``): the Spearman correlation over the trials
    between the metric and test (judge) AUC, or test (judge) specificity at the
    target recall, and the test (judge) figure of the trial it would choose
    (ties broken as ``search.results.rank_trials`` breaks them).

    python benchmarks/small_set_selection.py --data ../shared/data/pneumoniamnist.npz [--draws 5] \
        [--sizes 546 78 156] [--max-epochs 12] [--folds 5] [--out /tmp/small_set]

Cost, on two CPUs shared with other work: one search 13-17 min, and scoring
its 8 trials' 40 fold models on the ~5,200 test, validation and judge images
7-9 min more; a draw whose train split holds a duplicate runs two searches.

Scored trials are written per draw and variant to ``--out``; a rerun with the
same settings reuses them (``--fresh`` to run again), so draws can be added.
The test split and the judge set are read here for every trial, which a search
never does: this is a study of the estimates, not a way to choose.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ensemble_threshold import judging_archive
from scipy.stats import spearmanr
from selection_holdout import with_iid_splits

from search.results import rank_trials
from search.run import (
    build_parser,
    data_options,
    prepare_inputs,
    run,
    settings_from_args,
)
from trainables import (
    KEPT_FILE,
    Dataset,
    classification_metrics,
    load_datasets,
    load_kept_model,
)
from trainables.splits import fold_indices

VARIANTS = ("grouped", "ungrouped")
RULES = {  # ranking column of trials.csv -> what it is
    "kept_val_auc": "fold-mean AUC",
    "kept_oof_auc": "pooled OOF AUC",
    "kept_val_specificity_at_recall": "fold-mean spec@recall",
    "kept_oof_specificity_at_recall": "pooled OOF spec@recall",
}
DEFAULT_RULE = "kept_val_specificity_at_recall"  # the search's default --metric
STARTED = time.perf_counter()


def log(text: str) -> None:
    print(f"[{(time.perf_counter() - STARTED) / 60:5.1f} min] {text}", flush=True)


def ungrouped(datasets: dict[int, Dataset]) -> dict[int, Dataset]:
    """The datasets with every Split's groups unknown: folds become plain StratifiedKFold."""
    return {size: dataclasses.replace(d, **{name: dataclasses.replace(d.split(name), groups=None)
                                            for name in ("train", "val", "test")})
            for size, d in datasets.items()}


def duplicate_counts(dataset: Dataset) -> dict[str, int]:
    """Groups of (near-)identical images with more than one member, per split and over the draw."""
    out = {}
    for name in ("train", "val", "test"):
        groups = dataset.split(name).groups
        _, sizes = np.unique(groups, return_counts=True)
        out[f"{name}_dup_groups"] = int(np.sum(sizes > 1))
        out[f"{name}_dup_images"] = int(np.sum(sizes[sizes > 1]))
    every = np.concatenate([dataset.split(n).groups for n in ("train", "val", "test")])
    _, sizes = np.unique(every, return_counts=True)
    out["draw_dup_groups"] = int(np.sum(sizes > 1))
    out["test_seen_in_train_val"] = int(dataset.test_seen().sum())
    return out


def same_folds(dataset: Dataset, k: int) -> bool:
    """Whether grouping leaves the k folds of the train split as StratifiedKFold makes them."""
    with_groups = fold_indices(dataset.train.labels, k, groups=dataset.train.groups)
    without = fold_indices(dataset.train.labels, k)
    return all(np.array_equal(a[1], b[1]) for a, b in zip(with_groups, without, strict=True))


def last_kept_checkpoint(trial_path: str) -> Path | None:
    """The trial's latest checkpoint holding its deliverable (what the search would deliver)."""
    found = [p for p in sorted(Path(trial_path).glob("checkpoint_*")) if (p / KEPT_FILE).exists()]
    return found[-1] if found else None


def score_trials(folder: Path, dataset: Dataset, judge_images: np.ndarray, judge_labels: np.ndarray,
                 target_recall: float) -> pd.DataFrame:
    """trials.csv with each trial's delivered model scored on the test split and the judge set."""
    trials = pd.read_csv(folder / "trials.csv")
    rows = []
    for trial in trials.itertuples():
        checkpoint = last_kept_checkpoint(trial.path)
        if checkpoint is None:
            rows.append({"trial_id": trial.trial_id})
            continue
        kept = load_kept_model(checkpoint, device=torch.device("cpu"))
        row = {"trial_id": trial.trial_id, "fold_models": kept.folds, "threshold": kept.threshold}
        for name, labels, scores in (("test", dataset.test.labels, kept.classifier.predict_proba(dataset.test.images)),
                                     ("judge", judge_labels, kept.classifier.predict_proba(judge_images)),
                                     ("calib", dataset.val.labels, kept.classifier.predict_proba(dataset.val.images))):
            m = classification_metrics(labels, (scores >= 0.5).astype(int), scores, target_recall=target_recall)
            row[f"{name}_auc"] = m["auc"]
            row[f"{name}_specificity_at_recall"] = m["specificity_at_recall"]
            if name != "calib":  # at the delivered threshold (set on the val split), what the user gets
                called = scores >= kept.threshold
                row[f"{name}_recall_at_threshold"] = float(called[labels == 1].mean())
                row[f"{name}_specificity_at_threshold"] = float(1 - called[labels == 0].mean())
        if kept.out_of_fold is not None:  # the pooled OOF AUC recomputed from the stored scores, as a check
            row["oof_auc_check"] = classification_metrics(kept.out_of_fold.y_true, kept.out_of_fold.predictions(),
                                                          kept.out_of_fold.y_score)["auc"]
        rows.append(row)
    scored = trials.merge(pd.DataFrame(rows), on="trial_id")
    best = json.loads((folder / "best.json").read_text())
    chosen = best["deliverable"]["members"][0]["trial"]
    scored["chosen"] = scored["trial_id"] == chosen
    choice = best.get("choice") or {}  # search.comparison: the leaderboard's first and the tie rule's pick
    scored["leaderboard_first"] = scored["trial_id"] == choice.get("best", chosen)
    scored["tied_with_first"] = choice.get("tied_with_best", 0)
    delivered = best["test"]["test_auc"]
    mine = float(scored.loc[scored["chosen"], "test_auc"].iloc[0])
    if abs(mine - delivered) > 1e-6:
        raise RuntimeError(f"the chosen trial's test AUC here {mine} != best.json's {delivered}")
    return scored


def choose(scored: pd.DataFrame, column: str) -> pd.Series:
    """The trial ranking on ``column`` chooses: highest first, ties as rank_trials breaks them."""
    return rank_trials(scored.assign(objective=scored[column]), mode="max").iloc[0]


def one_draw(args: argparse.Namespace, draw: int, work: Path, out: Path) -> list[pd.DataFrame]:
    """Both variants' scored trials for one draw (reused from ``out`` when already there)."""
    tag = settings_tag(args)
    paths = {v: out / f"scored-{tag}-draw{draw}-{v}.csv" for v in args.variants}
    if not args.fresh and all(p.exists() for p in paths.values()):
        print(f"draw {draw}: reusing {', '.join(p.name for p in paths.values())}", flush=True)
        return [pd.read_csv(p) for p in paths.values()]
    source = Path(args.data).resolve()
    log(f"draw {draw}: drawing")
    drawn = with_iid_splits(source, work, draw, sizes=tuple(args.sizes))
    judge_set = load_datasets(str(judging_archive(source, drawn, work)), image_sizes=[args.image_size])
    judge = judge_set[args.image_size].test
    log(f"draw {draw}: judge set decoded")
    frames = []
    grouped_frame = None
    for variant in args.variants:
        flags = build_parser().parse_args([
            "--space", args.space, "--data", str(drawn), "--image-size", str(args.image_size),
            "--max-epochs", str(args.max_epochs), "--folds", str(args.folds), "--keep-weights", str(args.keep_weights),
            "--target-recall", str(args.target_recall), "--storage-path", str(work / "storage"),
            "--name", f"draw{draw}-{variant}"])
        settings = settings_from_args(flags)
        datasets, states, size = prepare_inputs(settings, flags)
        dataset = datasets[args.image_size]
        if not frames and grouped_frame is None:  # the data as loaded, once per draw
            dups = duplicate_counts(dataset)
            identical = same_folds(dataset, args.folds)
            print(f"\n=== draw {draw}: {dataset.summary(folds=args.folds)}", flush=True)
            log(f"draw {draw}: duplicate groups (>1 image) train {dups['train_dup_groups']} "
                f"({dups['train_dup_images']} images), val {dups['val_dup_groups']}, test {dups['test_dup_groups']}, "
                f"over the draw {dups['draw_dup_groups']}; test images with a copy in train+val "
                f"{dups['test_seen_in_train_val']}; grouped folds {'==' if identical else '!='} StratifiedKFold's; "
                f"judge set {len(judge)} images ({judge.class_counts()[1]} positive)")
        if variant == "ungrouped":
            if identical and grouped_frame is not None and not args.rerun_identical:
                print(f"draw {draw}: no duplicate in train, so the ungrouped folds are the grouped ones: "
                      "not rerun", flush=True)
                frame = grouped_frame.assign(variant=variant, same_folds=True, rerun=False)
                frame.to_csv(paths[variant], index=False)
                frames.append(frame)
                continue
            datasets = ungrouped(datasets)
            assert all(d.split(n).groups is None for d in datasets.values() for n in ("train", "val", "test"))
        started = time.perf_counter()
        folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                     data_options=data_options(flags), progress_interval_s=120)
        seconds = time.perf_counter() - started
        log(f"draw {draw} {variant}: search done in {seconds:.0f} s; scoring")
        frame = score_trials(folder, datasets[args.image_size], judge.images, judge.labels, args.target_recall)
        frame = frame.assign(draw=draw, variant=variant, same_folds=identical, rerun=True, search_s=seconds, **dups)
        frame.to_csv(paths[variant], index=False)
        log(f"draw {draw} {variant}: scored {len(frame)} trials -> {paths[variant]}")
        if variant == VARIANTS[0]:
            grouped_frame = frame
        frames.append(frame)
        if not args.keep_storage:
            shutil.rmtree(folder, ignore_errors=True)
    return frames


def settings_tag(args: argparse.Namespace) -> str:
    return (f"{args.space}-k{args.folds}-e{args.max_epochs}-s{args.image_size}-r{args.target_recall:g}-"
            + "-".join(map(str, args.sizes)))


# --- report ----------------------------------------------------------------------------------


def gaps(scored: pd.DataFrame) -> pd.DataFrame:
    """Per draw and variant: the chosen trial's CV AUCs and its test and judge AUC."""
    rows = []
    for (draw, variant), trials in scored.groupby(["draw", "variant"], sort=True):
        chosen = trials[trials["chosen"]].iloc[0]
        rows.append({"draw": draw, "variant": variant, "rerun": bool(chosen["rerun"]),
                     "chosen": f"{chosen['config/architecture']}/{chosen['config/strategy']}",
                     "cv_mean_auc": chosen["kept_val_auc"], "cv_oof_auc": chosen["kept_oof_auc"],
                     "test_auc": chosen["test_auc"], "judge_auc": chosen["judge_auc"],
                     "calib_auc": chosen["calib_auc"], "best_test_auc": trials["test_auc"].max(),
                     "best_judge_auc": trials["judge_auc"].max()})
    return pd.DataFrame(rows)


def rankings(scored: pd.DataFrame) -> pd.DataFrame:
    """Per draw, variant and ranking metric: Spearman with test/judge figures, and its choice's figures."""
    rows = []
    for (draw, variant), trials in scored.groupby(["draw", "variant"], sort=True):
        trials = trials.dropna(subset=list(RULES) + ["test_auc"])
        for column in RULES:
            target = "auc" if column.endswith("_auc") else "specificity_at_recall"
            pick = choose(trials, column)
            row = {"draw": draw, "variant": variant, "rule": column.removeprefix("kept_"), "target": target,
                   "trials": len(trials)}
            for where in ("test", "judge"):
                row[f"rho_{where}_auc"] = spearmanr(trials[column], trials[f"{where}_auc"]).statistic
                row[f"rho_{where}_{target}"] = spearmanr(trials[column], trials[f"{where}_{target}"]).statistic
                row[f"chosen_{where}_auc"] = pick[f"{where}_auc"]
                row[f"chosen_{where}_{target}"] = pick[f"{where}_{target}"]
                row[f"best_{where}_{target}"] = trials[f"{where}_{target}"].max()
            row["chosen_trial"] = pick["trial_id"]
            rows.append(row)
    return pd.DataFrame(rows)


def print_report(scored: pd.DataFrame, args: argparse.Namespace, seconds: float) -> str:
    g = gaps(scored)
    r = rankings(scored)
    draws = sorted(g["draw"].unique())
    lines = []
    say = lines.append
    dup = scored.groupby("draw").first()
    say("Near-duplicate groups (>1 image, trainables.identity) per draw: "
        + ", ".join(f"draw {d}: train {int(dup.loc[d, 'train_dup_groups'])}, whole draw "
                    f"{int(dup.loc[d, 'draw_dup_groups'])}" for d in draws))
    rerun = g[g["variant"] == "ungrouped"]["rerun"]
    say(f"Ungrouped search rerun (folds differ from the grouped ones) in {int(rerun.sum())} of {len(rerun)} draws; "
        "in the others the folds are identical and the rows are shared.")
    say("")
    say(f"(a) The chosen trial (the search's own choice, by {DEFAULT_RULE.removeprefix('kept_')}) per draw: "
        "its cross-validated AUC against its test AUC (test split) and its AUC on the judge set.")
    say("")
    say("| draw | variant | chosen | CV AUC fold mean | CV AUC pooled OOF | test AUC | judge AUC | "
        "gap mean→test | gap OOF→test | gap mean→judge | gap OOF→judge |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in g.itertuples():
        say(f"| {row.draw} | {row.variant}{'' if row.rerun else ' (= grouped)'} | {row.chosen} | "
            f"{row.cv_mean_auc:.3f} | {row.cv_oof_auc:.3f} | {row.test_auc:.3f} | {row.judge_auc:.3f} | "
            f"{row.test_auc - row.cv_mean_auc:+.3f} | {row.test_auc - row.cv_oof_auc:+.3f} | "
            f"{row.judge_auc - row.cv_mean_auc:+.3f} | {row.judge_auc - row.cv_oof_auc:+.3f} |")
    say("")
    say(f"Aggregated over {len(draws)} draws (gap = held-out AUC − CV AUC; 'optimistic' = CV AUC above it):")
    say("")
    say("| variant | estimate | vs | mean CV AUC | mean held-out AUC | mean gap | mean abs gap | optimistic |")
    say("|---|---|---|---|---|---|---|---|")
    for variant, part in g.groupby("variant", sort=False):
        for estimate, column in (("fold mean", "cv_mean_auc"), ("pooled OOF", "cv_oof_auc")):
            for where in ("test", "judge"):
                gap = part[f"{where}_auc"] - part[column]
                say(f"| {variant} | {estimate} | {where} | {part[column].mean():.3f} | {part[f'{where}_auc'].mean():.3f} "
                    f"| {gap.mean():+.3f} | {gap.abs().mean():.3f} | {int((gap < 0).sum())}/{len(gap)} |")
    say("")
    say("(c) Ranking the trials by the fold mean or by the pooled out-of-fold metric: Spearman ρ over the "
        f"{int(r['trials'].median())} configurations between the ranking metric and the held-out figure "
        "(AUC for the AUC rules; specificity at the target recall, each set's own threshold, for the spec@recall "
        "rules; ρ with AUC in brackets), and the held-out figure of the trial each rule chooses, "
        "mean over draws (regret: best trial's figure − chosen's).")
    say("")
    say("| variant | rule | ρ test | ρ judge | chosen test | regret test | chosen judge | regret judge | "
        "ρ judge wins (OOF vs mean) | chosen judge better (OOF vs mean) |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for variant, part in r.groupby("variant", sort=False):
        for rule in RULES:
            name = rule.removeprefix("kept_")
            rows = part[part["rule"] == name]
            target = rows["target"].iloc[0]
            rho_t, rho_j = rows[f"rho_test_{target}"], rows[f"rho_judge_{target}"]
            also = {w: "" if target == "auc" else f" ({rows[f'rho_{w}_auc'].mean():+.2f})" for w in ("test", "judge")}
            regret_t = rows[f"best_test_{target}"] - rows[f"chosen_test_{target}"]
            regret_j = rows[f"best_judge_{target}"] - rows[f"chosen_judge_{target}"]
            duel = ""
            if name.startswith("oof_"):
                other = part[part["rule"] == name.replace("oof_", "val_")].set_index("draw")
                mine = rows.set_index("draw")
                wins = int((mine[f"rho_judge_{target}"] > other[f"rho_judge_{target}"]).sum())
                ties = int((mine[f"rho_judge_{target}"] == other[f"rho_judge_{target}"]).sum())
                better = int((mine[f"chosen_judge_{target}"] > other[f"chosen_judge_{target}"]).sum())
                same = int((mine["chosen_trial"] == other["chosen_trial"]).sum())
                duel = (f"| {wins}/{len(mine)} (ties {ties}) | {better}/{len(mine)} (same trial {same}) |")
            else:
                duel = "| | |"
            say(f"| {variant} | {name} | {rho_t.mean():+.2f}{also['test']} | "
                f"{rho_j.mean():+.2f}{also['judge']} | {rows[f'chosen_test_{target}'].mean():.3f} | "
                f"{regret_t.mean():.3f} | {rows[f'chosen_judge_{target}'].mean():.3f} | {regret_j.mean():.3f} {duel}")
    say("")
    say("Per draw (c), ρ with the judge set's figure:")
    say("")
    say("| draw | variant | " + " | ".join(r.removeprefix("kept_") for r in RULES) + " |")
    say("|---|---|" + "---|" * len(RULES))
    for (draw, variant), part in r.groupby(["draw", "variant"], sort=True):
        cells = []
        for rule in RULES:
            row = part[part["rule"] == rule.removeprefix("kept_")].iloc[0]
            cells.append(f"{row[f'rho_judge_{row.target}']:+.2f}")
        say(f"| {draw} | {variant} | " + " | ".join(cells) + " |")
    if "leaderboard_first" in scored:
        say("")
        say("(b) The tie rule (--on-ties cheapest: among the trials tied with the leaderboard's first, the fewest "
            "parameters, then epochs) against the leaderboard's first, on held-out images: specificity at the "
            "target recall (each set's own threshold) and AUC.")
        say("")
        say("| draw | variant | first | tied | tie rule's pick | judge spec@recall first / pick | "
            "judge AUC first / pick | test spec@recall first / pick |")
        say("|---|---|---|---|---|---|---|---|")
        outcomes = []
        for (draw, variant), part in scored.groupby(["draw", "variant"], sort=True):
            first, pick = part[part["leaderboard_first"]].iloc[0], part[part["chosen"]].iloc[0]
            name = lambda row: f"{row['config/architecture']}/{row['config/strategy']}"  # noqa: E731
            outcomes.append(np.sign(pick["judge_specificity_at_recall"] - first["judge_specificity_at_recall"]))
            say(f"| {draw} | {variant} | {name(first)} | {int(part['tied_with_first'].iloc[0])} | {name(pick)} | "
                f"{first['judge_specificity_at_recall']:.3f} / {pick['judge_specificity_at_recall']:.3f} | "
                f"{first['judge_auc']:.3f} / {pick['judge_auc']:.3f} | "
                f"{first['test_specificity_at_recall']:.3f} / {pick['test_specificity_at_recall']:.3f} |")
        say("")
        say(f"The tie rule's pick on the judge set's specificity at recall: better in "
            f"{sum(o > 0 for o in outcomes)}, the same trial or equal in {sum(o == 0 for o in outcomes)}, worse in "
            f"{sum(o < 0 for o in outcomes)} of {len(outcomes)} searches.")
    say("")
    say(f"Settings: --space {args.space} --folds {args.folds} --image-size {args.image_size} --max-epochs "
        f"{args.max_epochs} --keep-weights {args.keep_weights} --target-recall {args.target_recall}, sizes "
        f"{' '.join(map(str, args.sizes))}, draws {', '.join(map(str, draws))}; this run {seconds / 60:.1f} min.")
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--draws", type=int, default=5, help="draws 0..D-1 (unless --draw-seeds)")
    parser.add_argument("--draw-seeds", type=int, nargs="+", default=None, help="the draws' seeds")
    parser.add_argument("--sizes", type=int, nargs=3, default=[546, 78, 156], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--space", default="quick")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--keep-weights", type=int, default=100)
    parser.add_argument("--target-recall", type=float, default=0.9)
    parser.add_argument("--variants", choices=VARIANTS, nargs="+", default=list(VARIANTS))
    parser.add_argument("--rerun-identical", action="store_true",
                        help="run the ungrouped search even where its folds are the grouped ones")
    parser.add_argument("--out", default="/tmp/small_set", help="scored trials (CSV) and the report go here")
    parser.add_argument("--fresh", action="store_true", help="run every draw again, reusing nothing")
    parser.add_argument("--keep-storage", action="store_true", help="keep the experiments' folders (in --out)")
    parser.add_argument("--report-only", action="store_true", help="report on the scored CSVs in --out, run nothing")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = args.draw_seeds if args.draw_seeds is not None else list(range(args.draws))
    frames = []
    if args.report_only:
        tag = settings_tag(args)
        frames = [pd.read_csv(out / f"scored-{tag}-draw{d}-{v}.csv") for d in seeds for v in args.variants]
    else:
        work = Path(tempfile.mkdtemp(prefix="work-", dir=out)) if args.keep_storage else None
        with tempfile.TemporaryDirectory(prefix="work-", dir=out) as tmp:
            for draw in seeds:
                frames += one_draw(args, draw, work or Path(tmp), out)
    scored = pd.concat(frames, ignore_index=True)
    check = scored.dropna(subset=["oof_auc_check", "kept_oof_auc"])
    worst = float((check["oof_auc_check"] - check["kept_oof_auc"]).abs().max()) if len(check) else float("nan")
    print(f"\ncheck: kept_oof_auc vs the AUC of the stored out-of-fold scores, largest difference {worst:.2e}")
    scored.to_csv(out / f"scored-{settings_tag(args)}-all.csv", index=False)
    text = print_report(scored, args, time.perf_counter() - started)
    (out / f"report-{settings_tag(args)}.md").write_text(text + "\n")
    print(f"\nwritten: {out / f'report-{settings_tag(args)}.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
