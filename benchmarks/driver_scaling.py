"""Driver cost per trial as a search grows: the Tune driver's CPU seconds per trial and its memory.

Runs the cheapest real trials (our trainable, the study's CNN, 1 epoch on 64
tiny images) through the search's own Tuner (``search.tuner.build_tuner``:
its checkpoint config, retention callback, verbosity, and the progress
callback ``search.run`` passes by default) on a local Ray with 2 CPUs, once
with 200 trials and once with ``--trials`` (1,440: the full grid), each in a
fresh process. Prints each size's driver CPU seconds per trial, peak driver
RSS, wall time and the 1-minute load average before and after (the machine
may be shared), then the memory ratio. The driver's CPU time is this
process's (Tune's controller, result logging, experiment snapshots, progress
output); the trials run in Ray's worker processes.

    python benchmarks/driver_scaling.py [--trials 1440]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE_TRIALS = 200


def run_once(trials: int) -> dict[str, float]:
    """One search of ``trials`` one-epoch trials in this process; driver CPU seconds, peak RSS and wall time."""
    import ray

    from search.connect import limit_malloc_arenas
    from search.progress import LiveProgress
    from search.spaces import Space
    from search.tuner import SearchSettings, build_tuner
    from trial_overhead import tiny_dataset

    limit_malloc_arenas()  # as search.run does before it starts Ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    space = Space("driver", {"seed": tuple(range(trials))}, max_epochs=1)
    with tempfile.TemporaryDirectory() as storage:
        settings = SearchSettings(space=space, name="driver", storage_path=Path(storage),
                                  fixed={"architecture": "cnn", "batch_size": 32, "image_size": 16, "max_epochs": 1})
        # As search.run builds it without --verbose: its progress line every 15 s (to stderr here).
        progress = LiveProgress(varied_keys=["seed"], max_epochs=1, mode=settings.mode, stream=sys.stderr, bar=False)
        tuner = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16,
                            callbacks=[progress])
        load_before = os.getloadavg()[0]
        cpu, wall = time.process_time(), time.perf_counter()
        results = tuner.fit()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert len(results) == trials and not results.errors, results.errors
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"trials": trials, "cpu_s_per_trial": cpu / trials, "peak_rss_mib": peak_mib, "wall_s": wall,
            "load_1min_before": load_before, "load_1min_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1440)
    parser.add_argument("--one", action="store_true", help="run one size in this process and print JSON")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_once(args.trials)))
        return
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")])}
    measured = {}
    for trials in (BASELINE_TRIALS, args.trials):
        # Its stderr (the progress lines) passes through; the last line of its stdout is the figures.
        out = subprocess.run([sys.executable, __file__, "--one", "--trials", str(trials)], stdout=subprocess.PIPE,
                             text=True, env=env, check=True).stdout
        measured[trials] = json.loads(out.strip().splitlines()[-1])
        m = measured[trials]
        print(f"driver_scaling {trials} trials: {m['cpu_s_per_trial']:.3f} driver CPU s per trial, peak driver RSS "
              f"{m['peak_rss_mib']:.0f} MiB, wall {m['wall_s']:.0f} s, 1-min load average "
              f"{m['load_1min_before']:.2f} before / {m['load_1min_after']:.2f} after", flush=True)
    ratio = measured[args.trials]["peak_rss_mib"] / measured[BASELINE_TRIALS]["peak_rss_mib"]
    print(f"driver_scaling memory ratio {args.trials}/{BASELINE_TRIALS} trials: {ratio:.2f}")


if __name__ == "__main__":
    main()
