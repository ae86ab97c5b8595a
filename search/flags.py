"""The flags of ``python -m search.run``: its parser, with each flag's help and default (search.settings checks them)."""

from __future__ import annotations

import argparse

from search.cli import OneLineParser
from search.connect import CONNECT_TIMEOUT_S
from search.comparison import TIE_RULES
from search.progress import DEFAULT_INTERVAL_S
from search.spaces import list_spaces
from search.tuner import SCHEDULERS, SEARCHERS
from trainables import (
    AUTO,
    DEFAULTS,
    METRIC_MODES,
    PNEUMONIA,
)
from trainables.dataset import AUTO_FOLDS, FEW_VALIDATION_POSITIVES

DEFAULT_OPTUNA_SAMPLES = 20


def _folds_flag(text: str) -> int | str:
    """--folds: an integer (checked with the other settings), or auto."""
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or {AUTO}; got {text!r}") from None


class DefaultsOnceFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default shown once: not after a help text that states it already, and never as "None"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def _duration_flag(text: str) -> float:
    """--time-budget: ``30s``, ``90m``, ``2h`` or a number of seconds, above 0."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a duration like 30s, 90m or 2h; got {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a duration above 0; got {text!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.run", description="Run a hyperparameter search (Ray Tune) of imbalanced binary image classifiers and write trials.csv.",
                formatter_class=DefaultsOnceFormatter)
    p.add_argument("--space", default="quick", help=f"one of {', '.join(list_spaces())}, or a .json space file")
    p.add_argument("--data", default=PNEUMONIA,
                   help=f"image folder (one sub-folder per class), MedMNIST-style .npz, or an embedded set: "
                        f"{PNEUMONIA} (780 chest X-rays of PneumoniaMNIST) or digits (scikit-learn's)")
    p.add_argument("--positive-class", default=None, help="name of the positive class (default: the minority)")
    p.add_argument("--dedup", action="store_true",
                   help="drop identical and near-identical images (perceptual hash) before splitting; the start "
                        "of a run counts them either way")
    p.add_argument("--image-size", type=int, default=None,
                   help="pixels for every model (default: 32 for the embedded sets, else 96 for the CNNs, 224 for ImageNet models)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="held out for validation, if the data has no splits")
    p.add_argument("--test-fraction", type=float, default=0.15, help="held out for test, if the data has no splits")
    p.add_argument("--scheduler", choices=list(SCHEDULERS), default="grid", help="grid: run every trial out; asha: stop weak ones early")
    p.add_argument("--grace-period", type=int, default=None,
                   help="with --scheduler asha: epochs before the first rung (default 1)")
    p.add_argument("--reduction-factor", type=float, default=None,
                   help="with --scheduler asha: each rung keeps the best 1/this of its trials (default 4)")
    p.add_argument("--search", choices=list(SEARCHERS), default="grid", help="grid: every combination; optuna: --num-samples draws")
    p.add_argument("--num-samples", type=int, default=None, help=f"trials Optuna draws (default {DEFAULT_OPTUNA_SAMPLES})")
    p.add_argument("--metric", choices=list(METRIC_MODES), default=DEFAULTS["metric"],
                   help="validation metric to optimise. The default judges the model where it ships: specificity at "
                        "its operating threshold. val_recall (recall at 0.5, the study's) reproduces the study but "
                        "rewards models biased towards the positive class and falls as a model trains, which "
                        "breaks ASHA")
    p.add_argument("--mode", choices=("max", "min"), default=None, help="default: the metric's natural direction")
    p.add_argument("--target-recall", type=float, default=DEFAULTS["target_recall"],
                   help="recall of the operating point: the threshold delivered with the model is the highest whose "
                        "expected recall on new positives reaches it (set on the validation positives, split conformal); "
                        "val_specificity_at_recall and val_precision_at_recall rank at it")
    p.add_argument("--min-balanced-accuracy", type=float, default=DEFAULTS["min_balanced_accuracy"],
                   help="degenerate-model guard: trials below it rank after all others (0 disables)")
    p.add_argument("--folds", type=_folds_flag, default=AUTO,
                   help="k > 1: each trial trains k models on stratified folds of the train split and is judged on "
                        "their mean; the chosen configuration delivers their mean probability, whose threshold is set "
                        "on the validation split (which no fold model trains on). auto (default): "
                        f"{AUTO_FOLDS} when validation holds under {FEW_VALIDATION_POSITIVES} positives, else 1")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per trial at most (default: the space's)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of every trial, the split and Optuna")
    p.add_argument("--seeds", type=int, default=None,
                   help="N > 1: each trial trains every fold's model under N seeds (--seed, --seed + 1, ...: their own "
                        "weights, order and augmentation, the same folds), is ranked on their mean with its standard "
                        "error, and delivers their mean (default 1; on --resume, the experiment's)")
    p.add_argument("--weights-dir", default=None, help="folder of ImageNet weight files (default: the torch hub cache)")
    p.add_argument("--no-pretrained", action="store_true", help="train ImageNet architectures from scratch")
    p.add_argument("--storage-path", default="./results",
                   help="where experiments are written: a folder, or a bucket (s3://bucket/path, gs://...; "
                   "credentials from AWS_* or GOOGLE_APPLICATION_CREDENTIALS)")
    p.add_argument("--name", default=None, help="experiment name (default: <space>-<scheduler>-<search>-<time>)")
    p.add_argument("--address", default=None, help="address of a running Ray cluster (default: start a local Ray)")
    p.add_argument("--connect-timeout", type=_duration_flag, default=CONNECT_TIMEOUT_S, metavar="DURATION",
                   help="with --address, how long to wait for the cluster to take the driver, e.g. 60s or 5m")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", default="0", metavar="SHARE",
                   help="GPU share of each trial (fractions share a GPU), or auto: each architecture's share from its "
                        "measured memory, so that trials fill the card without exceeding it (docs/benchmarks.md)")
    p.add_argument("--gpu-memory-gib", type=float, default=None,
                   help="with --gpus-per-trial auto: one GPU's memory (default: this machine's GPU)")
    p.add_argument("--max-concurrent-trials", type=int, default=None,
                   help="trials running at once at most (default: as many as the CPUs and GPUs fit; with Optuna, "
                        "as many as fit the CPUs, so that it proposes a trial when one can start)")
    p.add_argument("--time-budget", type=_duration_flag, default=None, metavar="DURATION",
                   help="stop the search after this long (30s, 90m, 2h, or seconds): finished trials are kept, the "
                        "others saved where they stopped; --resume goes on, with the budget again")
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker dies")
    p.add_argument("--checkpoint-period", type=float, default=60.0,
                   help="seconds of training between a trial's checkpoints, besides its last epoch and ASHA's rungs: "
                        "the most a crash loses (0: every epoch)")
    p.add_argument("--keep-weights", type=int, default=10,
                   help="finished trials whose kept weights stay on disk, besides the best of each architecture x "
                        "strategy x augmentation; the others keep their metrics only")
    p.add_argument("--ensemble-top", type=int, default=1,
                   help="also deliver the mean probability of the best N trials' kept models, with its own test "
                        "report beside the best trial's (1: the best trial alone)")
    p.add_argument("--on-ties", choices=list(TIE_RULES), default="best",
                   help="which of the trials statistically tied with the best to deliver (paired bootstrap on the "
                        "held-out images): cheapest, the fewest parameters then epochs; best, the leaderboard's first")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted experiment --name: finished trials are kept, unfinished ones "
                        "continue from their last checkpoint")
    p.add_argument("--retry-errored", action="store_true", help="with --resume: retry errored trials too")
    p.add_argument("--dry-run", action="store_true", help="print the trials and dimensions, start nothing")
    p.add_argument("--yes", action="store_true",
                   help="run a space of more than 2,000 trials without asking (needed when stdin is not a terminal)")
    p.add_argument("--verbose", action="store_true",
                   help="Tune's own status tables and per-trial blocks instead of one progress line every 15 s")
    p.add_argument("--progress-interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between progress lines")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write Tune's TensorBoard event files in each trial's folder (they cost time at scale)")
    p.add_argument("--mlflow", default=None, metavar="URI",
                   help="log every trial (config, per-epoch metrics) and the chosen model's test result as runs of "
                        "the MLflow experiment --name at this tracking URI, e.g. http://127.0.0.1:5000 (needs "
                        "pip install 'rare-class-search[mlflow]'; docs/tracking.md)")
    p.add_argument("--storage", default=None,
                   help="with --search optuna: an Optuna storage URL that keeps the study, e.g. sqlite:///study.db "
                        "(open it with optuna-dashboard)")
    p.add_argument("--study-name", default=None, help="with --storage: the study's name (None: the experiment's --name)")
    return p
