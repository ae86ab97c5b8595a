"""What Tune's TensorBoard files cost: N no-op trials with and without the TBX logger.

Each no-op trial reports ``--reports`` results of as many metrics as our
trainable reports (about 40 numbers), so the only work is Tune's: scheduling,
and each logger writing every result. Both runs keep the CSV and JSON loggers
(``analysis`` reads them); the second adds ``TBXLoggerCallback``, which is
what Tune adds by default. Runs alternate (without, with, without, with, ...)
so that a shared machine's drift falls on both. Prints
``tensorboard_overhead <loggers> <seconds per run>`` for each run and
``tensorboard_overhead ratio <with / without>`` (median over repeats), and the
size of the event files.

    python benchmarks/tensorboard_overhead.py [--trials 200] [--reports 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

# Tune reads this when fit() starts; the loggers are passed explicitly below.
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
os.environ["RAY_AIR_NEW_OUTPUT"] = "0"

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback  # noqa: E402

METRICS = 40  # about what train_fn reports per epoch (val_*, kept_val_*, losses, objective, timings)


def noop(config: dict) -> None:
    for i in range(config["reports"]):
        tune.report({f"metric_{k}": k * 0.001 + i for k in range(METRICS)})


def one_run(*, trials: int, reports: int, tensorboard: bool) -> tuple[float, int]:
    """Wall seconds of the whole search, and bytes of TensorBoard event files it wrote."""
    loggers = [CSVLoggerCallback(), JsonLoggerCallback(), *([TBXLoggerCallback()] if tensorboard else [])]
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(noop, {"cpu": 1}),
            param_space={"reports": reports, "seed": tune.grid_search(list(range(trials)))},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="tbx", verbose=0, callbacks=loggers),
        )
        start = time.perf_counter()
        results = tuner.fit()
        elapsed = time.perf_counter() - start
        events = sum(p.stat().st_size for p in Path(storage).rglob("events.out.tfevents*"))
    if results.errors:
        raise RuntimeError(results.errors)
    return elapsed, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reports", type=int, default=20, help="results per trial (epochs)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for tensorboard in (False, True):
            elapsed, events = one_run(trials=args.trials, reports=args.reports, tensorboard=tensorboard)
            seconds[tensorboard].append(elapsed)
            name = "csv+json+tbx" if tensorboard else "csv+json"
            print(f"tensorboard_overhead {name} {elapsed:.1f} s ({args.trials} trials x {args.reports} reports; "
                  f"event files {events / 1e6:.1f} MB)", flush=True)
    ratio = statistics.median(seconds[True]) / statistics.median(seconds[False])
    print(f"tensorboard_overhead ratio {ratio:.2f} (with / without TensorBoard files, median of {args.repeats})")


if __name__ == "__main__":
    main()
