"""Disk a search leaves: bytes per checkpoint per architecture, the peak during a run, the full grid projected.

1. For each architecture at the study's image size, one real trial step on
   tiny data, then its checkpoint written as trials write it: the
   deliverable (``kept.pt``) and the resume state (``resume.pt``). Prints
   ``disk_usage checkpoint <arch> kept <MiB> resume <MiB>``.
2. A search of ``--trials`` tiny trials (the study's CNNs at 16 px, every
   strategy) through the search's own Tuner, with the folder's size sampled
   every 0.2 s: ``disk_usage run peak <MiB> final <MiB>`` and Tune's own files
   per trial (results, parameters, logs) in KiB.
3. The full grid projected (1,440 trials, 288 per architecture, ``--concurrent``
   trials running at once): before (every finished trial kept its whole last
   checkpoint) and now (resume state only while running; weights only for the
   kept ones: ``--keep-weights`` plus the best of each of the 40 groups).

    python benchmarks/disk_usage.py [--trials 48] [--concurrent 16]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from search.retention import DEFAULT_KEEP_BEST
from search.spaces import STUDY_ARCHITECTURES, STUDY_STRATEGIES, Space, get_space
from search.tuner import SearchSettings, build_tuner
from trainables import KEPT_FILE, RESUME_FILE, Dataset, Split, TrialConfig, get_spec, run_trial, save_checkpoint

MIB = 2**20


def tiny(size: int, n: int = 4) -> Dataset:
    rng = np.random.default_rng(0)

    def split() -> Split:
        return Split(rng.integers(0, 255, (n, 1, size, size)).astype(np.uint8), np.arange(n) % 2)

    return Dataset(split(), split(), split(), ("neg", "pos"), "tiny")


def checkpoint_mib(architecture: str) -> tuple[float, float]:
    """MiB of a real checkpoint's deliverable and resume state (Adam, after one epoch of 2 steps)."""
    size = get_spec(architecture).input_size
    cfg = TrialConfig.from_dict({"architecture": architecture, "pretrained": False, "max_epochs": 2,
                                 "patience": 5, "batch_size": 2})
    states = []
    run_trial(cfg, tiny(size), spec=get_spec(cfg.architecture), report=lambda metrics, state: states.append(state))
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(folder, **states[0])  # after epoch 1 of 2: both files
        return ((Path(folder) / KEPT_FILE).stat().st_size / MIB, (Path(folder) / RESUME_FILE).stat().st_size / MIB)


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MIB


def peak_during_run(trials: int) -> tuple[float, float, float]:
    """Peak and final MiB of a search's folder, and Tune's own files per trial in KiB."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    seeds = max(1, trials // (2 * len(STUDY_STRATEGIES)))
    space = Space("disk", {"architecture": ("cnn", "cnn_bn"), "strategy": STUDY_STRATEGIES,
                           "seed": tuple(range(seeds))}, max_epochs=3)
    data = tiny(16, n=64)
    with tempfile.TemporaryDirectory() as storage:
        settings = SearchSettings(space=space, name="disk", storage_path=Path(storage), keep_weights=2,
                                  fixed={"image_size": 16, "batch_size": 16, "max_epochs": 3})
        tuner = build_tuner(settings, datasets={16: data}, imagenet_states={}, source_image_size=16)
        folder, peak, done = Path(storage) / "disk", [0.0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                if folder.exists():
                    peak[0] = max(peak[0], folder_mib(folder))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        tuner.fit()
        done.set()
        sampler.join()
        final = folder_mib(folder)
        checkpoints = sum(p.stat().st_size for p in folder.rglob("checkpoint_*/*") if p.is_file()) / MIB
        per_trial_kib = (final - checkpoints) * 1024 / space.num_grid_trials
    ray.shutdown()
    return peak[0], final, per_trial_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--concurrent", type=int, default=16, help="trials running at once in the projection")
    args = parser.parse_args()
    sizes = {}
    for architecture in STUDY_ARCHITECTURES:
        sizes[architecture] = checkpoint_mib(architecture)
        kept, resume = sizes[architecture]
        print(f"disk_usage checkpoint {architecture} at {get_spec(architecture).input_size} px: kept {kept:.1f} MiB, "
              f"resume {resume:.1f} MiB", flush=True)
    peak, final, per_trial_kib = peak_during_run(args.trials)
    print(f"disk_usage run {args.trials} trials: peak {peak:.1f} MiB, final {final:.1f} MiB, Tune's own files "
          f"{per_trial_kib:.0f} KiB per trial", flush=True)

    full = get_space("full")
    per_architecture = full.num_grid_trials // len(STUDY_ARCHITECTURES)
    groups_per_architecture = len(STUDY_STRATEGIES) * 2  # x augmentation
    logs_gib = full.num_grid_trials * per_trial_kib / 2**20
    before = sum(per_architecture * (kept + resume) for kept, resume in sizes.values()) / 1024 + logs_gib
    biggest = max(kept + resume for kept, resume in sizes.values())
    kept_weights = (sum(groups_per_architecture * kept for kept, _ in sizes.values())
                    + DEFAULT_KEEP_BEST * max(kept for kept, _ in sizes.values()))
    now = (args.concurrent * biggest + kept_weights) / 1024 + logs_gib
    print(f"disk_usage full grid ({full.num_grid_trials} trials) projected: before {before:.1f} GiB; now at most "
          f"{now:.1f} GiB ({args.concurrent} running trials' checkpoints {args.concurrent * biggest / 1024:.1f} GiB, "
          f"kept weights {kept_weights / 1024:.1f} GiB, Tune's files {logs_gib:.1f} GiB)")


if __name__ == "__main__":
    main()
