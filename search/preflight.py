"""Checks that a search can run at all, before Ray starts: resources per trial, and how many trials.

A trial that asks for more CPUs or GPUs than any node has is never
scheduled: Tune waits for it forever. A space of a hundred thousand trials
is more often a typo than a plan.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

from trainables import InputError

TRIAL_COUNT_THRESHOLD = 2_000  # above this many trials a run asks first (or wants --yes)


def local_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which taskset and containers narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_gpus() -> int:
    """GPUs torch can see here (CUDA_VISIBLE_DEVICES applies), without initialising CUDA."""
    import torch

    return torch.cuda.device_count()


def check_local_resources(*, cpus_per_trial: float, gpus_per_trial: float, cpus: int, gpus: int) -> None:
    """InputError naming the flag when one trial needs more than this machine has: it would wait forever."""
    if cpus_per_trial > cpus:
        raise InputError(f"--cpus-per-trial {cpus_per_trial:g} is more than the {cpus} CPUs of this machine, so no "
                         "trial could start; lower it, or run on a cluster with --address")
    if gpus_per_trial > 0 and gpus == 0:
        raise InputError(f"--gpus-per-trial {gpus_per_trial:g} asks for a GPU, but torch sees none on this machine, "
                         "so no trial could start; drop the flag, or run on a cluster with --address")
    if gpus_per_trial > gpus:
        raise InputError(f"--gpus-per-trial {gpus_per_trial:g} is more than the {gpus} GPUs of this machine, so no "
                         "trial could start; lower it, or run on a cluster with --address")


def cluster_shortfall(nodes: Iterable[Mapping], *, cpus_per_trial: float, gpus_per_trial: float,
                      address: str) -> str | None:
    """A one-line note when no live node of a cluster (``ray.nodes()``) can hold one trial now; else None.

    Only a note: an autoscaling cluster (cluster.yaml) adds GPU nodes when trials ask for them.
    """
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus_per_trial and r.get("GPU", 0) >= gpus_per_trial for r in alive):
        return None
    most_cpus = max((r.get("CPU", 0) for r in alive), default=0)
    most_gpus = max((r.get("GPU", 0) for r in alive), default=0)
    return (f"no node of the cluster at {address!r} has {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs for one "
            f"trial now (at most {most_cpus:g} CPUs, {most_gpus:g} GPUs per node); trials wait, with no time limit, "
            "until a node that fits joins (an autoscaler adds one); Ctrl-C stops and saves the experiment")


def confirm_trial_count(count: int, *, what: str, yes: bool, stdin: TextIO | None = None,
                        threshold: int = TRIAL_COUNT_THRESHOLD) -> None:
    """Ask before launching more than ``threshold`` trials; without a terminal, want ``--yes``."""
    if count <= threshold or yes:
        return
    stdin = sys.stdin if stdin is None else stdin
    if not _is_terminal(stdin):
        raise InputError(f"{what} has {count:,} trials, more than {threshold:,}; pass --yes to run them all "
                         "(--dry-run lists the dimensions)")
    print(f"{what} has {count:,} trials, more than {threshold:,}. Run them all? [y/N] ", end="", file=sys.stderr,
          flush=True)
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise InputError(f"not confirmed: {what} has {count:,} trials; nothing was started")


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed, or a stand-in without a descriptor
        return False
