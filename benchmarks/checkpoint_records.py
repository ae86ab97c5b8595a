"""Driver memory of Tune's records of a trial's checkpoints, now that Tune keeps every checkpoint (``num_to_keep=None``).

Tune records each checkpoint a trial reports, with the result it came with
(a trial's config and some 60 metrics here), and keeps every record while
``num_to_keep`` is None, although the search deletes superseded checkpoints.
This registers ``--checkpoints`` checkpoints for each of 1,440 trials with
Ray's own checkpoint manager and prints the memory the records hold
(tracemalloc), with ``TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE`` as set in
the environment (``search.tuner`` sets it to 1). No Ray cluster, a few seconds.

    python benchmarks/checkpoint_records.py --checkpoints 20
    TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE=1 python benchmarks/checkpoint_records.py --checkpoints 20
"""

from __future__ import annotations

import argparse
import os
import tracemalloc

TRIALS = 1440


def result_row(epoch: int) -> dict:
    """A result shaped like our trainable's, with the keys Tune adds."""
    return {
        **{f"val_{k}": 0.123456 for k in range(20)}, **{f"kept_val_{k}": 0.5 for k in range(20)},
        "epoch": epoch, "training_iteration": epoch, "train_loss": 0.4, "objective": 0.9, "tiebroken_objective": 0.9,
        "stopped_early": False, "diverged": False, "setup_s": 0.02, "node_id": "a" * 56, "trial_id": "abcde_00001",
        "date": "2026-11-25_18-00-00", "timestamp": 1, "time_this_iter_s": 0.5, "time_total_s": 3.0, "pid": 1234,
        "hostname": "host", "node_ip": "127.0.0.1", "time_since_restore": 3.0, "iterations_since_restore": epoch,
        "checkpoint_dir_name": f"checkpoint_{epoch:06d}", "done": False,
        "config": {f"key{k}": "value" for k in range(15)},
    }


def records_mib(checkpoints: int) -> float:
    """MiB held by the records of ``checkpoints`` checkpoints of each of 1,440 trials."""
    import pyarrow.fs
    from ray.train import Checkpoint, CheckpointConfig
    from trainables.ray_compat import checkpoint_manager, training_result

    fs = pyarrow.fs.LocalFileSystem()
    tracemalloc.start()
    managers = []
    for trial in range(TRIALS):
        manager = checkpoint_manager(CheckpointConfig(num_to_keep=None))
        for index in range(checkpoints):
            path = f"/storage/experiment/train_fn_{trial:05d}_a_long_trial_name/checkpoint_{index:06d}"
            manager.register_checkpoint(training_result(Checkpoint(path, filesystem=fs), metrics=result_row(index)))
        managers.append(manager)
    held, _ = tracemalloc.get_traced_memory()
    return held / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20, help="checkpoints per trial")
    args = parser.parse_args()
    lean = os.environ.get("TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE", "0")
    print(f"checkpoint_records {TRIALS} trials x {args.checkpoints} checkpoints, "
          f"TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE={lean}: {records_mib(args.checkpoints):.0f} MiB")


if __name__ == "__main__":
    main()
