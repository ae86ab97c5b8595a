"""What each trial asks Ray for: CPUs, and a GPU share that fits the trial's memory (``--gpus-per-trial auto``).

With a fixed share, every trial gets the same fraction of a GPU whatever its
architecture, so the share is either wasteful for the small CNNs or too small
for ResNet50. ``auto`` gives each trial ``1/k`` of a GPU, the largest share
such that ``k`` trials of that configuration fit on the card: its peak memory
(from the model registry's measured :class:`~trainables.GpuMemory`, at the
trial's batch and image size) times a safety margin, plus a CUDA context.
Every trial caps its allocator to its share (trainables.device), so a
misjudged share fails that trial alone, with one line naming what it needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune import PlacementGroupFactory

from trainables import AUTO, DEFAULTS, InputError, get_spec
from trainables.device import CUDA_CONTEXT_MIB

SAFETY = 1.25  # peak measured over one epoch; fragmentation and evaluation batches come on top
FP32_ACTIVATIONS = 2.0  # the peaks were measured under bf16 autocast; fp32 recipes keep activations twice as wide


def trial_gpu_mib(config: dict[str, Any], *, source_image_size: int | None) -> float:
    """GPU memory (MiB) one trial of ``config`` is expected to need, CUDA context included."""
    architecture = config.get("architecture", DEFAULTS["architecture"])
    spec = get_spec(architecture)
    if spec.gpu_memory is None:
        raise InputError(f"--gpus-per-trial auto: no GPU memory is recorded for {architecture!r}; give a share")
    size = spec.trial_image_size(override=config.get("image_size"), source_default=source_image_size)
    recipe = spec.gpu_recipe(size)
    memory = spec.gpu_memory
    fixed = memory.peak_mib(batch_size=0, image_size=size)
    activations = memory.peak_mib(batch_size=config.get("batch_size", DEFAULTS["batch_size"]), image_size=size) - fixed
    activations *= 1.0 if recipe.bf16 else FP32_ACTIVATIONS
    # A cross-validated trial holds its K fold models x its seeds (weights, gradients, optimiser state)
    # at once, and trains them one after the other, so only the fixed part is counted for each.
    fixed *= config.get("folds", DEFAULTS["folds"]) * config.get("seeds", DEFAULTS["seeds"])
    return (fixed + activations) * SAFETY + CUDA_CONTEXT_MIB


def gpu_share(need_mib: float, gpu_mib: float) -> float:
    """``1/k`` of a GPU for the largest ``k`` such that ``k`` trials needing ``need_mib`` fit; 1 if one barely fits."""
    return 1.0 / max(1, math.floor(gpu_mib / need_mib))


def trial_resources(*, cpus: float, gpus: float | str, gpu_mib: float | None, source_image_size: int | None
                    ) -> dict[str, float] | Callable[[dict[str, Any]], PlacementGroupFactory]:
    """Ray resources of a trial: a fixed request, or one computed per config for ``gpus="auto"``."""
    if gpus != AUTO:
        return {"cpu": cpus, "gpu": float(gpus)}
    if not gpu_mib:
        raise ValueError("gpus='auto' needs gpu_mib, one GPU's memory")

    def per_config(config: dict[str, Any]) -> PlacementGroupFactory:
        share = gpu_share(trial_gpu_mib(config, source_image_size=source_image_size), gpu_mib)
        return PlacementGroupFactory([{"CPU": cpus, "GPU": share}])

    return per_config


def describe_shares(dimensions: dict[str, tuple[Any, ...]], fixed: dict[str, Any], *, gpu_mib: float,
                    source_image_size: int | None) -> str:
    """One line: the GPU share ``auto`` gives each architecture and batch size of a space."""
    parts = []
    for architecture in dimensions.get("architecture", (fixed.get("architecture", DEFAULTS["architecture"]),)):
        for batch in dimensions.get("batch_size", (fixed.get("batch_size", DEFAULTS["batch_size"]),)):
            config = {**fixed, "architecture": architecture, "batch_size": batch}
            need = trial_gpu_mib(config, source_image_size=source_image_size)
            parts.append(f"{architecture} batch {batch}: 1/{round(1 / gpu_share(need, gpu_mib))} ({need:,.0f} MiB)")
    return f"GPU shares (auto, {gpu_mib / 1024:.0f} GiB per GPU): " + ", ".join(parts)


def largest_gpu_request(gpus: float | str) -> float:
    """The most GPU one trial can ask for: the fixed share, or a whole GPU under ``auto``."""
    return 1.0 if gpus == AUTO else float(gpus)


def local_gpu_mib() -> float | None:
    """Memory of this machine's first visible GPU in MiB, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**20
