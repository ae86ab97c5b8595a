"""A tensor-resident batch loader, in the manner of airbench's ``CifarLoader``.

Images stay as one uint8 tensor (on the training device when there is one);
each batch is indexed out, scaled to [0, 1], augmented as a batch, widened to
the model's channel count and normalised. No worker processes, no per-image
Python: the loader costs a few tensor ops per batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from trainables.augmentation import augment_batch, draw_augmentations
from trainables.device import Placement
from trainables.models import ModelSpec
from trainables.splits import Split

EVAL_BATCH_SIZE = 256  # images per forward pass when evaluating; no effect on results


class BatchLoader:
    """Iterate over ``(images, labels)`` batches of one split.

    Parameters
    ----------
    images : uint8 tensor ``(n, C, H, W)``
    labels : int64 tensor ``(n,)``
    batch_size : int
    shuffle : bool, default=False
        New random order every epoch (ignored when ``sample_weights`` is given).
    sample_weights : tensor ``(n,)``, default=None
        Draw ``n`` indices with replacement in proportion to these weights
        each epoch (``WeightedRandomSampler``), for oversampling.
    augment : bool, default=False
    channels : int, default=None
        Channels the model takes; greyscale is repeated to 3 for ImageNet models.
    mean, std : sequence of float, default=None
        Per-channel normalisation after scaling to [0, 1]; None leaves [0, 1].
    generator : torch.Generator, default=None
        Source of the order, the oversampling draws and the augmentation.
    memory_format : torch.memory_format, default=torch.contiguous_format
        Layout of the batches (``channels_last`` where the model's GPU recipe says so).
    drop_last : bool, default=False
        Leave out an epoch's last partial batch (when there is a full one), so
        every training step has the same shape: on a GPU a new shape costs
        cuDNN's autotuning again, and some kernels compile per shape.
    pad_last : bool, default=False
        Pad the last partial batch's images with zeros to a full batch (its
        labels are not padded: the first ``len(labels)`` outputs are real), for
        evaluation at one shape.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        sample_weights: torch.Tensor | None = None,
        augment: bool = False,
        channels: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
        drop_last: bool = False,
        pad_last: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(f"images must be a uint8 tensor (n, C, H, W); got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = labels.to(images.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sample_weights = sample_weights
        self.augment = augment
        self.channels = channels or images.shape[1]
        self.memory_format = memory_format
        self.drop_last = drop_last
        self.pad_last = pad_last
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self._mean = None if mean is None else torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
        self._std = None if std is None else torch.tensor(std, device=images.device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return -(-self._served(len(self.labels)) // self.batch_size)

    def _served(self, n: int) -> int:
        """Images served per epoch: all, or whole batches only when dropping the last partial one."""
        return n - n % self.batch_size if self.drop_last and n >= self.batch_size else n

    def order(self) -> torch.Tensor:
        """Indices of one epoch, in the order they are served."""
        n = len(self.labels)
        if self.sample_weights is not None:
            # The draw WeightedRandomSampler makes, without its round trip through a list.
            return torch.multinomial(self.sample_weights.double(), n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        order = order[: self._served(len(order))].to(self.images.device)
        draws = draw_augmentations(len(order), self.generator, self.images.device) if self.augment else None
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.prepare(self.images[idx], None if draws is None else draws[start : start + self.batch_size])
            if self.pad_last and len(idx) < self.batch_size:
                x = torch.cat([x, x.new_zeros((self.batch_size - len(idx), *x.shape[1:]))])
                x = x.contiguous(memory_format=self.memory_format)
            yield x, self.labels[idx]

    def prepare(self, batch: torch.Tensor, draws: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images to the model's normalised float input, augmented with ``draws`` when given."""
        x = batch.float().div_(255)
        if draws is not None:
            x = augment_batch(x, draws)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        if self._mean is not None:
            x = (x - self._mean) / self._std
        return x.contiguous(memory_format=self.memory_format)


def model_loader(split: Split, spec: ModelSpec, where: Placement, *, batch_size: int, train: bool = False,
                 augment: bool = False, generator: torch.Generator | None = None,
                 sample_weights: torch.Tensor | None = None) -> BatchLoader:
    """A loader of ``split`` shaped for ``spec``'s model on ``where``; shuffling and augmentation only with ``train``.

    Batch shapes stay fixed (full training batches; on a GPU, padded evaluation
    batches), so that cuDNN tunes and compiles its kernels once per worker.
    """
    images = _as_tensor(split.images).to(where.device)
    norm = spec.normalization()
    return BatchLoader(
        images,
        _as_tensor(split.labels),
        batch_size=batch_size,
        shuffle=train,
        sample_weights=sample_weights if train else None,
        augment=augment and train,
        channels=spec.in_channels(images.shape[1]),
        mean=norm[0] if norm else None,
        std=norm[1] if norm else None,
        generator=generator,
        memory_format=where.memory_format,
        drop_last=train,
        pad_last=not train and where.device.type == "cuda",
    )


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays from Ray's object store are read-only views of shared memory; torch
    # warns about that, but the tensors are never written to.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
