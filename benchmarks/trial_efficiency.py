"""Trial efficiency: one epoch of our trainable against a bare PyTorch loop doing the same passes.

Ours: ``run_trial`` for one epoch, everything included (tensor loader,
augmentation, oversampling sampler, validation metrics, reporting and a
checkpoint written to disk, as ``train_fn`` does). Bare: the same model, the
same number of forward/backward passes over preallocated float tensors and
one forward pass over the validation set. Prints ``trial_efficiency <model>
<ratio>``, ratio = bare time / our time (1.0 = no overhead).

    python benchmarks/trial_efficiency.py [--smoke-test] [--repeats 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from torch import nn

from trainables import Dataset, Split, TrialConfig, create_model, load_datasets, run_trial, save_state
from trainables.models import get_spec


def subset(dataset: Dataset, n_train: int, n_val: int) -> Dataset:
    """The first images of each split, so a CPU epoch of a big model stays short."""
    def take(split: Split, n: int) -> Split:
        return Split(split.images[:n], split.labels[:n])
    return Dataset(take(dataset.train, n_train), take(dataset.val, n_val), dataset.test, dataset.class_names,
                   dataset.source)


def ours(cfg: TrialConfig, dataset: Dataset) -> float:
    """Seconds for one epoch of run_trial, checkpoint written like train_fn does."""
    folder = tempfile.mkdtemp()

    def report(metrics, state):
        save_state(state, folder)

    start = time.perf_counter()
    run_trial(cfg, dataset, report=report)
    return time.perf_counter() - start


def bare(cfg: TrialConfig, dataset: Dataset) -> float:
    """Seconds for the same passes on preallocated tensors: the arithmetic alone."""
    torch.manual_seed(0)
    spec = get_spec(cfg.architecture)
    model = create_model(cfg.architecture, in_channels=dataset.channels, image_size=dataset.image_size)
    channels = spec.in_channels(dataset.channels)
    size = dataset.image_size
    x = torch.rand(cfg.batch_size, channels, size, size)
    y = torch.randint(0, 2, (cfg.batch_size,))
    val = torch.rand(min(256, len(dataset.val)), channels, size, size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    criterion = nn.CrossEntropyLoss()
    steps = -(-len(dataset.train) // cfg.batch_size)
    val_steps = -(-len(dataset.val) // len(val))
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for _ in range(val_steps):
            model(val)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--repeats", type=int, default=1, help="measured epochs per side (the median ratio is printed)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cases = {"cnn": (96, 1257), "resnet18": (224, 256)}  # model: (image size, training images)
    if args.smoke_test:
        cases = {"cnn": (32, 256), "resnet18": (32, 128)}
    for name, (size, n_train) in cases.items():
        dataset = subset(load_datasets(None, image_sizes=[size])[size], n_train, max(64, n_train // 5))
        cfg = TrialConfig.from_dict({"architecture": name, "max_epochs": 1, "strategy": "both", "augment": True,
                                     "pretrained": False, "batch_size": 64})
        warm = subset(dataset, 128, 64)
        ours(cfg, warm), bare(cfg, warm)  # warm-up (allocator, kernels) on a few batches, to stay within minutes
        ratios = [bare(cfg, dataset) / ours(cfg, dataset) for _ in range(args.repeats)]
        print(f"trial_efficiency {name} {np.median(ratios):.2f}  (size {size}, {n_train} train images, "
              f"median of {args.repeats})", flush=True)


if __name__ == "__main__":
    main()
