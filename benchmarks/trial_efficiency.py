"""Trial efficiency: one epoch of our trainable against a bare PyTorch loop doing the same passes.

Ours: ``run_trial`` for one epoch, everything included (tensor loader,
augmentation, oversampling sampler, validation metrics, reporting and a
checkpoint written to disk, as ``train_fn`` does). Bare: the same model, the
same number of forward/backward passes over preallocated float tensors on the
same device, with the same precision and memory format (the architecture's
GPU recipe), and the same evaluation passes. Prints ``trial_efficiency
<model> <ratio>``, ratio = bare time / our time (1.0 = no overhead).

    python benchmarks/trial_efficiency.py [--smoke-test] [--repeats 1] [--device cuda]

On a GPU every architecture is measured, at the sizes of issue 9's table.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from torch import nn

from trainables import (
    EVAL_BATCH_SIZE,
    Dataset,
    Split,
    TrialConfig,
    load_datasets,
    placement,
    run_trial,
    save_checkpoint,
)
from trainables.models import get_spec


def subset(dataset: Dataset, n_train: int, n_val: int) -> Dataset:
    """The first images of each split, so a CPU epoch of a big model stays short."""
    def take(split: Split, n: int) -> Split:
        return Split(split.images[:n], split.labels[:n])
    return Dataset(take(dataset.train, n_train), take(dataset.val, n_val), dataset.test, dataset.class_names,
                   dataset.source)


def ours(cfg: TrialConfig, dataset: Dataset, device: torch.device) -> float:
    """Seconds for one epoch of run_trial, checkpoint written like train_fn does."""
    folder = tempfile.mkdtemp()

    def report(metrics, state):
        save_checkpoint(folder, **state)

    start = time.perf_counter()
    run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=report, device=device)
    _synchronize(device)
    return time.perf_counter() - start


def bare(cfg: TrialConfig, dataset: Dataset, device: torch.device) -> float:
    """Seconds for the same passes on preallocated tensors on ``device``: the arithmetic alone."""
    torch.manual_seed(0)
    spec = get_spec(cfg.architecture)
    where = placement(spec, dataset.image_size, device)
    model = spec.build(in_channels=dataset.channels, image_size=dataset.image_size,
                       device=device).to(memory_format=where.memory_format)
    channels = spec.in_channels(dataset.channels)
    size = dataset.image_size
    x = torch.rand(cfg.batch_size, channels, size, size, device=device).contiguous(memory_format=where.memory_format)
    y = torch.randint(0, 2, (cfg.batch_size,), device=device)
    val_batch = EVAL_BATCH_SIZE if device.type == "cuda" else min(EVAL_BATCH_SIZE, len(dataset.val))
    val = torch.rand(val_batch, channels, size, size, device=device).contiguous(memory_format=where.memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    criterion = nn.CrossEntropyLoss()
    steps = len(dataset.train) // cfg.batch_size  # full batches, as ours trains
    val_steps = -(-len(dataset.val) // val_batch)
    _synchronize(device)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        with where.autocast():
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad(), where.autocast():
        for _ in range(val_steps):
            model(val)
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--repeats", type=int, default=1, help="measured epochs per side (the median ratio is printed)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: both sides run there")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(2)
    cases = {"cnn": (96, 1257), "resnet18": (224, 256)}  # model: (image size, training images)
    if device.type == "cuda":
        cases = {"cnn": (96, 1257), "cnn_bn": (96, 1257), "resnet18": (224, 1257), "resnet50": (224, 1257),
                 "efficientnet_b0": (128, 1257)}
    if args.smoke_test:
        cases = {"cnn": (32, 256), "resnet18": (32, 128)}
    for name, (size, n_train) in cases.items():
        dataset = subset(load_datasets(None, image_sizes=[size])[size], n_train, max(64, n_train // 5))
        cfg = TrialConfig.from_dict({"architecture": name, "max_epochs": 1, "strategy": "both", "augment": True,
                                     "pretrained": False, "batch_size": 64})
        warm = subset(dataset, 128, 64)
        ours(cfg, warm, device), bare(cfg, warm, device)  # warm-up (allocator, kernels), to stay within minutes
        ratios = [bare(cfg, dataset, device) / ours(cfg, dataset, device) for _ in range(args.repeats)]
        recipe = placement(get_spec(name), size, device).recipe
        print(f"trial_efficiency {name} {np.median(ratios):.2f}  (size {size}, {n_train} train images, {device}, "
              f"bf16 {recipe.bf16}, channels_last {recipe.channels_last}, median of {args.repeats})", flush=True)


if __name__ == "__main__":
    main()
