"""Driver overhead of checkpoints: a checkpoint every epoch against checkpoints only where needed.

Ray Tune keeps one checkpoint per trial here (``num_to_keep=1``), and then
snapshots the whole experiment's state after every checkpoint; a snapshot's
cost grows with the number of trials, so over a search the cost grows with its
square. Runs our trainable (5 epochs on 64 tiny images, so compute is small)
for many trials on a local Ray with 2 CPUs, under both policies, and prints
``checkpoint_overhead <policy> <seconds per trial per slot>`` and their ratio.

    python benchmarks/checkpoint_overhead.py [--trials 200]
"""

from __future__ import annotations

import argparse
import math

import ray
from ray import tune
from trial_overhead import REPORTS, tiny_dataset, wall_per_trial

from trainables import EVERY_EPOCH, CheckpointPolicy, train_fn

POLICIES = {"every_epoch": EVERY_EPOCH, "needed_only": CheckpointPolicy(period_s=math.inf)}


def seconds_per_trial(policy: CheckpointPolicy, *, trials: int) -> float:
    """Wall seconds per trial and slot (2 running at a time) of ``trials`` reused-worker trials."""
    trainable = tune.with_parameters(train_fn, datasets={16: tiny_dataset()}, image_size=16, checkpoints=policy)
    space = {"architecture": "cnn", "max_epochs": REPORTS, "patience": REPORTS, "batch_size": 32}
    seconds, _ = wall_per_trial(trainable, space, trials=trials, reuse=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    seconds = {}
    for name, policy in POLICIES.items():
        seconds[name] = seconds_per_trial(policy, trials=args.trials)
        print(f"checkpoint_overhead {name} {seconds[name]:.2f} s/trial per slot ({args.trials} trials of "
              f"{REPORTS} epochs)", flush=True)
    print(f"checkpoint_overhead speedup {seconds['every_epoch'] / seconds['needed_only']:.1f}x")


if __name__ == "__main__":
    main()
