"""Where the driver's memory goes as a search grows: RSS before ``fit``, at the experiment's end, after ``fit``.

The same search as benchmarks/driver_scaling.py (one-epoch trials of our
trainable through ``search.tuner.build_tuner``, with the progress callback),
in this process. Prints one JSON line: RSS in MiB before ``fit``, the most
sampled every 2 s during it, at Tune's ``on_experiment_end`` (the trials'
bookkeeping; what follows is the ``ResultGrid`` that ``fit`` builds, with a
data frame per trial), after ``fit``, the peak, and the 1-minute load average.

    python benchmarks/driver_memory.py --trials 1440
    DRIVER_MALLOC_ARENAS=default python benchmarks/driver_memory.py --trials 1440  # glibc's arenas
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
from pathlib import Path

from ray.tune import Callback


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


class _AtEnd(Callback):
    def __init__(self, marks: dict[str, float]) -> None:
        self.marks = marks

    def on_experiment_end(self, trials: list, **info) -> None:
        self.marks["at_experiment_end"] = rss_mib()


def run_once(trials: int) -> dict[str, float]:
    import ray

    from search.connect import limit_malloc_arenas
    from search.progress import LiveProgress
    from search.spaces import Space
    from search.tuner import SearchSettings, build_tuner
    from trial_overhead import tiny_dataset

    if os.environ.get("DRIVER_MALLOC_ARENAS", "2") != "default":  # "default": glibc's own limit, for comparison
        limit_malloc_arenas()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    marks: dict[str, float] = {}
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2):
            samples.append(rss_mib())

    with tempfile.TemporaryDirectory() as storage:
        settings = SearchSettings(space=Space("driver", {"seed": tuple(range(trials))}, max_epochs=1), name="driver",
                                  storage_path=Path(storage),
                                  fixed={"architecture": "cnn", "batch_size": 32, "image_size": 16, "max_epochs": 1})
        progress = LiveProgress(varied_keys=["seed"], max_epochs=1, mode=settings.mode, stream=sys.stderr, bar=False)
        tuner = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16,
                            callbacks=[progress, _AtEnd(marks)])
        marks["before_fit"] = rss_mib()
        threading.Thread(target=sample, daemon=True).start()
        tuner.fit()
        marks["after_fit"] = rss_mib()
        done.set()
    marks["most_sampled_in_fit"] = max(samples, default=0.0)
    marks["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"trials": trials, **{k: round(v) for k, v in marks.items()}, "load_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1440)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # trial_overhead, beside this file
    print(json.dumps(run_once(args.trials)))


if __name__ == "__main__":
    main()
