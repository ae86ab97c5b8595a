"""Per-trial overhead: Ray Tune's worker start-up, with and without actor reuse, for a no-op and our trainable.

32 trials of 5 reports each on a local Ray with 2 CPUs. The no-op trainable
only reports; ours trains the study's CNN for 5 epochs on 64 tiny images, so
its compute is small and what it adds over the no-op is its own overhead
(data from the object store, model set-up, metrics, checkpoints).
Prints ``trial_overhead <trainable> <reuse> <seconds per trial>``, the ratios,
and ``trial_startup``: seconds from the trainable's start to its first step.

    python benchmarks/trial_overhead.py [--trials 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import ray
from ray import tune

from trainables import Dataset, Split, train_fn

REPORTS = 5


def noop(config: dict) -> None:
    for i in range(REPORTS):
        tune.report({"i": i})


def tiny_dataset(size: int = 16) -> Dataset:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        labels = (np.arange(n) % 4 == 0).astype(np.int64)
        return Split(rng.integers(0, 255, (n, 1, size, size)).astype(np.uint8), labels)

    return Dataset(split(64), split(32), split(32), ("neg", "pos"), "tiny")


def wall_per_trial(trainable, param_space: dict, *, trials: int, reuse: bool) -> tuple[float, float | None]:
    """Seconds of wall time per trial (2 running at a time), and the median ``setup_s`` trials reported."""
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={**param_space, "seed": tune.grid_search(list(range(trials)))},
            tune_config=tune.TuneConfig(reuse_actors=reuse),
            run_config=tune.RunConfig(storage_path=storage, verbose=0,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
        start = time.perf_counter()
        results = tuner.fit()
        elapsed = time.perf_counter() - start
    assert not results.errors, results.errors
    setups = [r.metrics["setup_s"] for r in results if "setup_s" in (r.metrics or {})]
    return elapsed * 2 / trials, (float(np.median(setups)) if setups else None)  # 2 concurrent slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ours = tune.with_parameters(train_fn, datasets={16: tiny_dataset()}, image_size=16)
    ours_space = {"architecture": "cnn", "max_epochs": REPORTS, "patience": REPORTS, "batch_size": 32}
    seconds = {}
    for name, trainable, space in (("noop", noop, {}), ("ours", ours, ours_space)):
        for reuse in (False, True):
            seconds[name, reuse], setup = wall_per_trial(trainable, space, trials=args.trials, reuse=reuse)
            print(f"trial_overhead {name} reuse={reuse} {seconds[name, reuse]:.2f} s/trial per slot", flush=True)
            if setup is not None:
                print(f"trial_startup {name} reuse={reuse} {setup:.3f} s from trial start to first step (median)")
    print(f"trial_overhead reuse_speedup noop {seconds['noop', False] / seconds['noop', True]:.1f}x")
    print(f"trial_overhead reuse_speedup ours {seconds['ours', False] / seconds['ours', True]:.1f}x")
    print(f"trial_overhead ours_over_noop reuse=True {seconds['ours', True] / seconds['noop', True]:.2f}")


if __name__ == "__main__":
    main()
