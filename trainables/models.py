"""Registered model factories: the study's two CNNs and three ImageNet models.

Each entry says whether it starts from ImageNet weights, the image size it is
made for, how its input is normalised and which layer Grad-CAM should look
at. :meth:`ModelSpec.build` (or ``create_model`` by name) builds a fresh model; ``load_pretrained_state`` reads
ImageNet weights from disk only (the torch hub cache or ``weights_dir``), so
that nothing is downloaded while trials run.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models as tv

from trainables.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 2  # index 1 is the positive (minority) class


@dataclass(frozen=True)
class GpuRecipe:
    """How an architecture trains fastest on a GPU: bfloat16 autocast or fp32 (TF32), and the memory layout."""

    bf16: bool
    channels_last: bool


FP32_CHANNELS_LAST = GpuRecipe(bf16=False, channels_last=True)
FP32_NCHW = GpuRecipe(bf16=False, channels_last=False)
BF16_CHANNELS_LAST = GpuRecipe(bf16=True, channels_last=True)


@dataclass(frozen=True)
class GpuMemory:
    """Peak GPU memory (MiB reserved, one training epoch) measured at two batch sizes and one image size.

    The peak grows about linearly with the batch (activations) from a fixed
    part (weights, gradients, optimiser state, workspace); activations grow
    with the image's area.
    """

    image_size: int
    mib_at_batch_32: float
    mib_at_batch_64: float

    def peak_mib(self, *, batch_size: int, image_size: int) -> float:
        """The expected peak at another batch size and image size."""
        per_image = (self.mib_at_batch_64 - self.mib_at_batch_32) / 32
        fixed = self.mib_at_batch_32 - 32 * per_image
        return fixed + per_image * batch_size * (image_size / self.image_size) ** 2


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the code needs to know about one architecture."""

    name: str
    factory: Callable[[int, int], nn.Module]  # (in_channels, image_size) -> model with a 2-logit head
    input_size: int  # pixels, the size the study fed it
    gradcam_layer: Callable[[nn.Module], nn.Module]
    imagenet_weights: tv.WeightsEnum | None = None  # None: trained from scratch only
    # GPU recipe by image size: the entry of the largest threshold <= the size applies.
    gpu_recipes: tuple[tuple[int, GpuRecipe], ...] = ((0, FP32_CHANNELS_LAST),)
    gpu_memory: GpuMemory | None = None

    def gpu_recipe(self, image_size: int) -> GpuRecipe:
        """The precision and layout this architecture trains fastest with at ``image_size`` (docs/benchmarks.md)."""
        return max((t, r) for t, r in self.gpu_recipes if t <= image_size)[1] if self.gpu_recipes else FP32_NCHW

    @property
    def pretrainable(self) -> bool:
        return self.imagenet_weights is not None

    def in_channels(self, data_channels: int) -> int:
        """Channels the model takes: ImageNet models take RGB, greyscale is repeated."""
        return 3 if self.pretrainable else data_channels

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(mean, std) applied after scaling to [0, 1], or None."""
        return (IMAGENET_MEAN, IMAGENET_STD) if self.pretrainable else None

    def trial_image_size(self, *, override: int | None, source_default: int | None) -> int:
        """Pixels a trial's images have: ``override``, else the source's size, else this model's."""
        return override or source_default or self.input_size

    def build(self, *, in_channels: int = 3, image_size: int | None = None,
              imagenet_state: dict[str, torch.Tensor] | None = None,
              device: torch.device | str | None = None) -> nn.Module:
        """A fresh model, built on ``device``; with ``imagenet_state`` its backbone starts from those ImageNet weights."""
        # Built where it trains: initialising on the CPU and copying costs a GPU trial its setup time.
        with torch.device(device or "cpu"):
            model = self.factory(self.in_channels(in_channels), image_size or self.input_size)
        if imagenet_state is not None:
            if not self.pretrainable:
                raise InputError(f"{self.name!r} has no ImageNet weights; it is trained from scratch")
            head = _head_names(model)
            backbone = {k: v for k, v in imagenet_state.items() if k.rsplit(".", 1)[0] not in head}
            try:
                missing, unexpected = model.load_state_dict(backbone, strict=False)
            except RuntimeError as err:  # shapes differ: the file is another architecture's
                raise InputError(f"ImageNet weights do not fit {self.name!r}: {str(err).splitlines()[1].strip()}") from None
            if unexpected or set(k.rsplit(".", 1)[0] for k in missing) - head:
                raise InputError(f"ImageNet weights do not fit {self.name!r}: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
        return model


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_size: int,
    gradcam_layer: Callable[[nn.Module], nn.Module],
    imagenet_weights: tv.WeightsEnum | None = None,
    gpu_recipes: tuple[tuple[int, GpuRecipe], ...] = ((0, FP32_CHANNELS_LAST),),
    gpu_memory: GpuMemory | None = None,
) -> Callable[[Callable[[int, int], nn.Module]], Callable[[int, int], nn.Module]]:
    """Decorator that registers a factory ``(in_channels, image_size) -> nn.Module``."""

    def wrap(factory: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        if name in _MODELS:
            warnings.warn(f"model {name!r} registered again by {factory.__module__}; the new one wins", stacklevel=2)
        _MODELS[name] = ModelSpec(name, factory, input_size, gradcam_layer, imagenet_weights, gpu_recipes, gpu_memory)
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_MODELS)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; InputError naming close matches otherwise."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown architecture {name!r}; choose from {', '.join(list_models())}{hint}") from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A fresh ``name`` model: :meth:`ModelSpec.build` of its spec (same keywords)."""
    return get_spec(name).build(**kwargs)


def check_input_size(name: str, image_size: int) -> None:
    """Build ``name`` and pass it one image of ``image_size``; InputError if the size does not fit."""
    model = create_model(name, in_channels=3, image_size=image_size).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as err:
        raise InputError(f"{name!r} cannot take {image_size}x{image_size} images: {str(err).splitlines()[0]}") from None


def weights_path(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Where the ImageNet weights of ``name`` are expected: ``weights_dir`` or the torch hub cache."""
    spec = get_spec(name)
    if not spec.pretrainable:
        raise InputError(f"{name!r} has no ImageNet weights; it is trained from scratch")
    filename = os.path.basename(spec.imagenet_weights.url)
    folder = Path(weights_dir).expanduser() if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
    return folder / filename


def load_pretrained_state(name: str, weights_dir: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """ImageNet state dict of ``name``, read from disk; InputError naming the file when absent."""
    path = weights_path(name, weights_dir)
    if not path.is_file():
        raise InputError(
            f"ImageNet weights for {name!r} not found at {str(path)!r}; "
            f"download {get_spec(name).imagenet_weights.url} there, pass --weights-dir, or use --no-pretrained"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged file
        raise InputError(f"cannot load ImageNet weights {str(path)!r}: {err}") from None


def _head_names(model: nn.Module) -> set[str]:
    """Module names of the classification head that replaces ImageNet's 1000-way one."""
    return {"fc"} if hasattr(model, "fc") else {"classifier.1"}


# --- the study's CNNs ---------------------------------------------------------------------
# GPU recipes and memory: steady training steps and peak memory of one trial on an H200 (torch 2.11,
# batch 64, data on the GPU), measured for issue 9 and tabled in docs/benchmarks.md. bf16 is not
# faster everywhere: the small models are bound by kernel launches, not by arithmetic.


class StudyCNN(nn.Module):
    """The study's CNN: four conv blocks (optionally with BatchNorm), two dense layers.

    Each block is conv3x3 -> [BatchNorm] -> ReLU -> maxpool2; dropout 0.25
    after blocks 2 and 4 and 0.5 after ``fc1``. ``fc1`` follows the input size
    (the study hard-coded 256*6*6 for 96x96), so any size divisible by 16 works.
    """

    def __init__(self, in_channels: int, image_size: int, *, batch_norm: bool) -> None:
        super().__init__()
        if image_size % 16:
            raise InputError(f"the study's CNN needs an image size divisible by 16 (four 2x2 pools); got {image_size}")
        widths = (in_channels, 32, 64, 128, 256)
        blocks = []
        for i in range(4):
            layers = [nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, padding=1)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(widths[i + 1]))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            if i in (1, 3):
                layers.append(nn.Dropout(0.25))
            blocks.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*blocks)
        side = image_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * side * side, 256),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(256, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _last_conv_block(model: nn.Module) -> nn.Module:
    # The last block's activation, before its pool: twice the resolution of the block's output.
    return next(m for m in model.features[-1] if isinstance(m, nn.ReLU))


# cnn's recipe was not measured apart: it is cnn_bn's without the BatchNorm kernels.
@register_model("cnn", input_size=96, gradcam_layer=_last_conv_block,
                gpu_memory=GpuMemory(96, mib_at_batch_32=340, mib_at_batch_64=426))
def cnn(in_channels: int, image_size: int) -> nn.Module:
    """The study's CNN without BatchNorm."""
    return StudyCNN(in_channels, image_size, batch_norm=False)


# 96 px: fp32 + channels_last 3.8 ms a step, bf16 + channels_last 4.1, fp32 NCHW 4.5.
@register_model("cnn_bn", input_size=96, gradcam_layer=_last_conv_block,
                gpu_memory=GpuMemory(96, mib_at_batch_32=378, mib_at_batch_64=482))
def cnn_bn(in_channels: int, image_size: int) -> nn.Module:
    """The study's CNN with BatchNorm after each conv."""
    return StudyCNN(in_channels, image_size, batch_norm=True)


# --- torchvision ImageNet models -------------------------------------------------------------


def _with_two_way_fc(model: nn.Module) -> nn.Module:
    model.fc = nn.Linear(model.fc.in_features, NUM_CLASSES)
    return model


# 224 px: fp32 + channels_last 10.1 ms, fp32 NCHW 14.9, bf16 + channels_last 17.5.
@register_model("resnet18", input_size=224, gradcam_layer=lambda m: m.layer4[-1],
                imagenet_weights=tv.ResNet18_Weights.IMAGENET1K_V1,
                gpu_memory=GpuMemory(224, mib_at_batch_32=1070, mib_at_batch_64=1464))
def resnet18(in_channels: int, image_size: int) -> nn.Module:
    """torchvision ResNet18, ``fc`` replaced by a 2-way linear layer."""
    return _with_two_way_fc(tv.resnet18(weights=None))


# 224 px: bf16 + channels_last 27.0 ms, fp32 + channels_last 30.2, fp32 NCHW 34.7.
@register_model("resnet50", input_size=224, gradcam_layer=lambda m: m.layer4[-1],
                imagenet_weights=tv.ResNet50_Weights.IMAGENET1K_V1, gpu_recipes=((0, BF16_CHANNELS_LAST),),
                gpu_memory=GpuMemory(224, mib_at_batch_32=2492, mib_at_batch_64=3828))
def resnet50(in_channels: int, image_size: int) -> nn.Module:
    """torchvision ResNet50, ``fc`` replaced by a 2-way linear layer."""
    return _with_two_way_fc(tv.resnet50(weights=None))


# 128 px: fp32 NCHW 24.4 ms, fp32 + channels_last 31.1, bf16 + channels_last 44.4; 224 px: fp32 +
# channels_last 36.7, bf16 + channels_last 36.9, fp32 NCHW 45.1. Its depthwise convolutions in
# channels_last also compile kernels for every new input shape (4-10 s each).
@register_model("efficientnet_b0", input_size=224, gradcam_layer=lambda m: m.features[-1],
                imagenet_weights=tv.EfficientNet_B0_Weights.IMAGENET1K_V1,
                gpu_recipes=((0, FP32_NCHW), (176, FP32_CHANNELS_LAST)),
                gpu_memory=GpuMemory(224, mib_at_batch_32=2250, mib_at_batch_64=3770))
def efficientnet_b0(in_channels: int, image_size: int) -> nn.Module:
    """torchvision EfficientNet-B0, ``classifier[1]`` replaced by a 2-way linear layer."""
    model = tv.efficientnet_b0(weights=None)
    model.classifier[1] = nn.Linear(model.classifier[1].in_features, NUM_CLASSES)
    return model
