"""Per-trial start-up of the study's CNN at 96 px on the embedded digits: data fetch, then set-up to the first step.

The data is decoded once, on the driver, and put in Ray's object store; each
trial reads it from there. Two figures, measured in one run on a local Ray with
2 CPUs:

- ``data_fetch``: seconds for a worker to get every split from the object store,
  and whether the arrays are zero-copy views of shared memory (no copy per trial).
- ``trial_startup``: the ``setup_s`` trials report, from the trainable's start
  (data in hand) to its first training step: config, model, optimiser, loaders,
  data on the device. Median over the trials, with fresh and with reused workers.

    python benchmarks/trial_startup.py [--trials 4] [--image-size 96]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
from ray import tune
from trial_overhead import wall_per_trial

from trainables import Dataset, load_datasets, train_fn


@ray.remote(num_cpus=1)
def fetch(datasets: dict[int, Dataset]) -> tuple[float, bool, int]:
    """Seconds to receive ``datasets`` in a worker (timed by the caller), whether no array was copied, and bytes."""
    arrays = [a for d in datasets.values() for s in (d.train, d.val, d.test) for a in (s.images, s.labels)]
    zero_copy = all(not a.flags.writeable and not a.flags.owndata for a in arrays)
    return time.perf_counter(), zero_copy, sum(a.nbytes for a in arrays)


def data_fetch_seconds(datasets: dict[int, Dataset]) -> tuple[float, bool, int]:
    """Median seconds from a task's submission to it holding the data, over 5 tasks (the first one warms a worker)."""
    ref = ray.put(datasets)
    ray.get(fetch.remote(ref))
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        done, zero_copy, size = ray.get(fetch.remote(ref))
        runs.append(done - start)
    return float(np.median(runs)), zero_copy, size


def setup_seconds(datasets: dict[int, Dataset], size: int, *, trials: int, reuse: bool) -> float:
    """Median ``setup_s`` of ``trials`` one-epoch trials of the study's CNN."""
    trainable = tune.with_parameters(train_fn, datasets=datasets, image_size=size)
    _, setup = wall_per_trial(trainable, {"architecture": "cnn", "max_epochs": 1}, trials=trials, reuse=reuse)
    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=96)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    datasets = load_datasets(None, image_sizes=[args.image_size])
    seconds, zero_copy, size = data_fetch_seconds(datasets)
    print(f"data_fetch {seconds:.3f} s for {size / 2**20:.1f} MiB of images and labels, zero-copy: {zero_copy}",
          flush=True)
    for reuse in (False, True):
        setup = setup_seconds(datasets, args.image_size, trials=args.trials, reuse=reuse)
        print(f"trial_startup cnn {args.image_size}px reuse={reuse} {setup:.3f} s from trial start to first step "
              f"(median of {args.trials})", flush=True)


if __name__ == "__main__":
    main()
