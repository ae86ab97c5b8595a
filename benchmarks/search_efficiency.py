"""Search efficiency and packing: ASHA against plain grid on the quick space, and how full the slots are.

Runs the quick space (16 trials) twice on a local Ray with 2 CPUs, once with
the FIFO scheduler (every trial to its own early stop) and once with ASHA.
Images are 16x16 so that both runs fit in a few minutes on a CPU. Prints

- ``packing <scheduler> <ratio>``: (sum of trial times / concurrent slots) / wall time; 1.0 = no idle slot.
- ``search_efficiency epochs <ratio>``: epochs grid spent to reach its best validation objective over the
  epochs ASHA spent to come within 0.01 of it (higher is better for ASHA).
- ``search_efficiency wall <ratio>``: the same in wall-clock time.

    python benchmarks/search_efficiency.py [--image-size 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
import ray

from search import SearchSettings, build_tuner, get_space
from trainables import load_datasets

SLOTS = 2
TOLERANCE = 0.01


def run_space(scheduler: str, image_size: int, storage: str, grace_period: int | None = None) -> tuple[pd.DataFrame, float]:
    """All epoch reports of one search (with a wall-clock column), and its wall time."""
    space = get_space("quick")
    settings = SearchSettings(space=space, name=scheduler, storage_path=storage, scheduler=scheduler,
                              fixed={"image_size": image_size, "max_epochs": space.max_epochs},
                              grace_period=grace_period if scheduler == "asha" else None)
    datasets = load_datasets(None, image_sizes=[image_size])
    start = time.time()
    results = build_tuner(settings, datasets=datasets, imagenet_states={}, source_image_size=image_size).fit()
    wall = time.time() - start
    frames = [r.metrics_dataframe.assign(trial=i) for i, r in enumerate(results)]
    epochs = pd.concat(frames, ignore_index=True)
    epochs["elapsed"] = epochs["timestamp"] - start
    return epochs, wall


def cost_to_reach(epochs: pd.DataFrame, target: float) -> tuple[int, float]:
    """Epochs reported, and seconds elapsed, until some trial's objective first reaches ``target``."""
    ordered = epochs.sort_values("elapsed", kind="stable").reset_index(drop=True)
    hit = ordered.index[ordered["objective"] >= target][0]
    return int(hit) + 1, float(ordered.loc[hit, "elapsed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--grace-period", type=int, default=None, help="ASHA's first rung (default: the CLI's)")
    args = parser.parse_args()
    ray.init(num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
    runs = {}
    with tempfile.TemporaryDirectory() as storage:
        for scheduler in ("grid", "asha"):
            epochs, wall = run_space(scheduler, args.image_size, storage, args.grace_period)
            runs[scheduler] = epochs
            busy = epochs.groupby("trial")["time_total_s"].max().sum()
            print(f"packing {scheduler} {busy / SLOTS / wall:.2f}  ({len(epochs)} epochs, {wall:.0f} s wall)", flush=True)
    grid, asha = runs["grid"], runs["asha"]
    best_grid, best_asha = grid["objective"].max(), asha["objective"].max()
    grid_epochs, grid_seconds = cost_to_reach(grid, best_grid)
    if best_asha < best_grid - TOLERANCE:
        print(f"search_efficiency asha missed the grid's best: {best_asha:.4f} < {best_grid:.4f} - {TOLERANCE}")
        return
    asha_epochs, asha_seconds = cost_to_reach(asha, best_grid - TOLERANCE)
    print(f"search_efficiency epochs {grid_epochs / asha_epochs:.1f}  (grid {grid_epochs} epochs to its best "
          f"{best_grid:.4f}, asha {asha_epochs} to within {TOLERANCE}; totals {len(grid)} vs {len(asha)})")
    print(f"search_efficiency wall {grid_seconds / asha_seconds:.1f}  (grid {grid_seconds:.0f} s, asha {asha_seconds:.0f} s)")
    print(f"search_efficiency total_epochs {len(grid) / len(asha):.1f}  (whole searches: grid {len(grid)}, asha {len(asha)})")


if __name__ == "__main__":
    main()
