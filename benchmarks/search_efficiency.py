"""Search efficiency and packing: ASHA against plain grid on the quick space, and how full the slots are.

Runs the quick space twice (on the digits) on a local Ray with 2 CPUs, once with
the FIFO scheduler (every trial to its own early stop) and once with ASHA.
Images are 16x16 so that both runs fit in a few minutes on a CPU. Prints

- ``packing <scheduler> <ratio>``: (sum of trial times / concurrent slots) / wall time; 1.0 = no idle slot.
- ``search_efficiency total_epochs <ratio>``: epochs of the whole grid search over those of the whole ASHA
  search, and whether ASHA chose the same configuration (ranked as ``search.run`` ranks trials).
- ``search_efficiency epochs <ratio>``: epochs grid spent to reach its best validation objective over the
  epochs ASHA spent to come within 0.01 of it (higher is better for ASHA).
- ``search_efficiency wall <ratio>``: the same in wall-clock time.

    python benchmarks/search_efficiency.py [--image-size 16] [--grace-period 1] [--reduction-factor 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from search import SearchSettings, build_tuner, get_space, rank_trials, trials_frame
from trainables import load_datasets

SLOTS = 2
TOLERANCE = 0.01


def run_space(scheduler: str, image_size: int, storage: str, asha_options: dict[str, Any]) -> tuple[pd.DataFrame, dict, float]:
    """All epoch reports of one search (with a wall-clock column), the config it chose, and its wall time."""
    space = get_space("quick")
    settings = SearchSettings(space=space, name=scheduler, storage_path=Path(storage), scheduler=scheduler,
                              fixed={"image_size": image_size, "max_epochs": space.max_epochs},
                              **(asha_options if scheduler == "asha" else {}))
    datasets = load_datasets(None, image_sizes=[image_size])
    start = time.time()
    results = build_tuner(settings, datasets=datasets, imagenet_states={}, source_image_size=image_size).fit()
    wall = time.time() - start
    frames = [r.metrics_dataframe.assign(trial=i) for i, r in enumerate(results)]
    epochs = pd.concat(frames, ignore_index=True)
    epochs["elapsed"] = epochs["timestamp"] - start
    best = rank_trials(trials_frame(results, max_epochs=space.max_epochs), mode="max").iloc[0]
    chosen = {k.removeprefix("config/"): v for k, v in best.items() if k.startswith("config/") and k[7:] in space.dimensions}
    return epochs, chosen, wall


def cost_to_reach(epochs: pd.DataFrame, target: float) -> tuple[int, float]:
    """Epochs reported, and seconds elapsed, until some trial's objective first reaches ``target``."""
    ordered = epochs.sort_values("elapsed", kind="stable").reset_index(drop=True)
    hit = ordered.index[ordered["objective"] >= target][0]
    return int(hit) + 1, float(ordered.loc[hit, "elapsed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--grace-period", type=int, default=None, help="ASHA's first rung (default: the CLI's)")
    parser.add_argument("--reduction-factor", type=float, default=None, help="ASHA's rung ratio (default: the CLI's)")
    parser.add_argument("--save-epochs", default=None, help="folder to write each search's epoch reports to, as CSV")
    args = parser.parse_args()
    asha_options = {k: v for k, v in (("grace_period", args.grace_period), ("reduction_factor", args.reduction_factor))
                    if v is not None}
    ray.init(num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
    runs, chosen = {}, {}
    with tempfile.TemporaryDirectory() as storage:
        for scheduler in ("grid", "asha"):
            epochs, chosen[scheduler], wall = run_space(scheduler, args.image_size, storage, asha_options)
            runs[scheduler] = epochs
            busy = epochs.groupby("trial")["time_total_s"].max().sum()
            print(f"packing {scheduler} {busy / SLOTS / wall:.2f}  ({len(epochs)} epochs, {wall:.0f} s wall)", flush=True)
            if args.save_epochs:
                Path(args.save_epochs).mkdir(parents=True, exist_ok=True)
                epochs.to_csv(Path(args.save_epochs) / f"{scheduler}.csv", index=False)
    grid, asha = runs["grid"], runs["asha"]
    same = chosen["grid"] == chosen["asha"]
    print(f"search_efficiency total_epochs {len(grid) / len(asha):.1f}  (whole searches: grid {len(grid)}, "
          f"asha {len(asha)}; same chosen config: {same})")
    if not same:
        print(f"  grid chose {chosen['grid']}\n  asha chose {chosen['asha']}")
    best_grid, best_asha = grid["objective"].max(), asha["objective"].max()
    grid_epochs, grid_seconds = cost_to_reach(grid, best_grid)
    if best_asha < best_grid - TOLERANCE:
        print(f"search_efficiency asha missed the grid's best: {best_asha:.4f} < {best_grid:.4f} - {TOLERANCE}")
        return
    asha_epochs, asha_seconds = cost_to_reach(asha, best_grid - TOLERANCE)
    print(f"search_efficiency epochs {grid_epochs / asha_epochs:.1f}  (grid {grid_epochs} epochs to its best "
          f"{best_grid:.4f}, asha {asha_epochs} to within {TOLERANCE})")
    print(f"search_efficiency wall {grid_seconds / asha_seconds:.1f}  (grid {grid_seconds:.0f} s, asha {asha_seconds:.0f} s)")


if __name__ == "__main__":
    main()
