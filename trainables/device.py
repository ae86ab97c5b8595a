"""Where a trial runs, and how it uses a GPU: precision, memory layout, memory cap, peak memory.

On the CPU every trial runs in fp32 with the default layout. On a GPU the
architecture's measured :class:`~trainables.models.GpuRecipe` decides bf16 or
fp32 (TF32) and channels_last, and a trial that shares the GPU with others
caps its allocator to its share, so that packing N trials on a card can never
take more than the card.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from trainables.models import GpuRecipe, ModelSpec

# Memory the CUDA context takes outside PyTorch's allocator, per process (measured on the H200: about 500 MiB).
CUDA_CONTEXT_MIB = 500.0
_CPU = GpuRecipe(bf16=False, channels_last=False)


class GpuMemoryError(RuntimeError):
    """A trial needed more GPU memory than its share; the message is one line naming the share it needs."""


@dataclass(frozen=True)
class Placement:
    """A trial's device and how it computes there."""

    device: torch.device
    recipe: GpuRecipe

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.recipe.bf16 else None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.recipe.channels_last else torch.contiguous_format

    def autocast(self):
        """bf16 autocast where the recipe asks for it, else nothing."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def data_device() -> torch.device:
    """The trial's device: the GPU Ray assigned it, if any."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def placement(spec: ModelSpec, image_size: int, device: torch.device | None = None) -> Placement:
    """The device and recipe of one trial of ``spec``; on a GPU, also turns on TF32 and cuDNN's autotuner."""
    device = device or data_device()
    if device.type != "cuda":
        return Placement(device, _CPU)
    # TF32 for fp32 matmuls and convolutions (the recipes' "fp32" was measured so); the autotuner
    # pays off because batch shapes are stable (full training batches, padded evaluation batches).
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    recipe = spec.gpu_recipe(image_size)
    if recipe.bf16 and not torch.cuda.is_bf16_supported():
        recipe = GpuRecipe(bf16=False, channels_last=recipe.channels_last)
    return Placement(device, recipe)


def cap_gpu_memory(share: float, device: torch.device) -> float | None:
    """Cap this process's allocator to ``share`` of the GPU, less the CUDA context; the cap in MiB, or None."""
    if device.type != "cuda" or not 0 < share < 1:
        return None
    total = torch.cuda.get_device_properties(device).total_memory / 2**20
    fraction = max(share - CUDA_CONTEXT_MIB / total, 0.01)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction * total


@contextmanager
def out_of_memory_in_one_line(what: str, cap_mib: float | None) -> Iterator[None]:
    """Turn torch's OutOfMemoryError into a :class:`GpuMemoryError` saying that ``what`` needs more than its share."""
    try:
        yield
    except torch.OutOfMemoryError:
        share = f"its share of the GPU ({cap_mib:.0f} MiB)" if cap_mib else "the GPU's memory"
        raise GpuMemoryError(f"{what} needs more than {share}; raise --gpus-per-trial, "
                             "or pass --gpus-per-trial auto") from None


def reset_peak_memory(device: torch.device) -> None:
    """Start counting this trial's peak GPU memory (workers are reused between trials)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """``{"peak_gpu_mem_mib": ...}``: the most the allocator reserved since the trial began; empty on the CPU."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_mem_mib": torch.cuda.max_memory_reserved(device) / 2**20}
