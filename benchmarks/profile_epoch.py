"""Where an epoch of our trainable goes: a profile of ``run_trial`` for the study's CNN at 96 px.

Two views of the same epochs, measured in one run:

- cProfile, by stage of the trainable: batch preparation (tensor loader,
  sampler, augmentation), the training and validation passes, the metrics, and
  the checkpoint. Prints ``profile <stage> <share of the trial>``.
- ``torch.profiler``, by operator: the ops with the most self CPU time.

What to look for: the model's passes should take nearly all of the time; a
stage outside them that takes more than a few per cent is worth optimising.

    python benchmarks/profile_epoch.py [--architecture cnn] [--image-size 96] [--epochs 2]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from trainables import TrialConfig, get_spec, load_datasets, run_trial, save_checkpoint

# (file suffix, function name) of each stage, as cProfile names them.
STAGES = {
    "batches": ("trainables/loader.py", "__iter__"),
    "augmentation": ("trainables/augmentation.py", "augment_batch"),
    "train_pass": ("trainables/loop.py", "train_one_epoch"),
    "val_pass": ("trainables/loop.py", "evaluate"),
    "metrics": ("trainables/metrics.py", "classification_metrics"),
    "checkpoint": ("trainables/checkpoints.py", "save_checkpoint"),
}


def cumulative_seconds(stats: pstats.Stats, file_suffix: str, name: str) -> float:
    """Total time spent in (and under) one function, summed over its calls."""
    return sum(ct for (file, _, func), (_, _, _, ct, _) in stats.stats.items()
               if func == name and file.endswith(file_suffix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="cnn")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    dataset = load_datasets(None, image_sizes=[args.image_size])[args.image_size]
    cfg = TrialConfig.from_dict({"architecture": args.architecture, "max_epochs": args.epochs, "strategy": "both",
                                 "augment": True, "pretrained": False, "batch_size": 64})
    folder = tempfile.mkdtemp()

    def report(metrics, state):
        save_checkpoint(folder, **state)

    run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=report)  # warm-up: allocator, kernels, imports

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(run_trial, cfg, dataset, report=report)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    seconds = {stage: cumulative_seconds(stats, *where) for stage, where in STAGES.items()}
    # The passes include drawing their batches; what is left is the model's arithmetic.
    seconds["model"] = seconds["train_pass"] + seconds["val_pass"] - seconds["batches"]
    print(f"profile {args.architecture} at {args.image_size} px, {len(dataset.train)} training images, "
          f"{args.epochs} epochs: {total:.2f} s under cProfile")
    for stage in ("model", "batches", "augmentation", "metrics", "checkpoint"):
        print(f"profile {stage} {seconds[stage] / total:.3f}  ({seconds[stage]:.3f} s)")

    with profile(activities=[ProfilerActivity.CPU]) as ops:
        run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=report)
    print(ops.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
