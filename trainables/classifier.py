"""The model a search delivers, as one object: ``Classifier.load(path)``, then ``predict_proba`` and ``predict``.

A deliverable is one trial's model, its fold ensemble (the mean probability of
its K fold models), or the mean of the top trials' models (``--ensemble-top``);
all three are an :class:`Ensemble` of :class:`Member` modules. Each member
carries its own input preparation (channels, normalisation), so the ensemble
takes float images ``[N, C, S, S]`` in [0, 1] and returns the positive-class
probability ``[N]``: the same function the search scored, the one ONNX gets.

``Classifier.load`` reads an exported model folder (``model.json`` and
``weights.safetensors``, written by :meth:`Classifier.save`) or an experiment
folder (its ``best.json`` names the delivered checkpoints). Neither unpickles
code: safetensors, and ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.checkpoints import kept_weights, load_kept
from trainables.config import TrialConfig
from trainables.errors import InputError
from trainables.images import resize_images
from trainables.models import create_model, get_spec
from trainables.operating import OperatingPoint
from trainables.storage import Storage, local_folder, user_folder

BEST_FILE = "best.json"  # what a finished search delivers, in the experiment folder (search.deliverable writes it)
CARD_FILE = "model.json"  # an exported model's card
WEIGHTS_FILE = "weights.safetensors"
ONNX_FILE = "model.onnx"
PREDICT_BATCH = 256  # images per forward pass; no effect on results


class Member(nn.Module):
    """One trained model with its input preparation: float ``[N, C, S, S]`` in [0, 1] -> positive probability ``[N]``."""

    def __init__(self, model: nn.Module, architecture: str, data_channels: int) -> None:
        super().__init__()
        spec = get_spec(architecture)
        self.model = model
        self.channels = spec.in_channels(data_channels)
        norm = spec.normalization()
        mean, std = norm if norm else ((0.0,) * self.channels, (1.0,) * self.channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.expand(-1, self.channels, -1, -1) if images.shape[1] != self.channels else images
        return self.model((x - self.mean) / self.std).float().softmax(dim=1)[:, 1]


class Ensemble(nn.Module):
    """The mean positive-class probability of its members (a single model is an ensemble of one)."""

    def __init__(self, members: Sequence[Member]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members]).mean(dim=0)


@dataclass(frozen=True)
class MemberSpec:
    """What rebuilds one member: its architecture, the data's channels, the image size it takes, and its trial."""

    architecture: str
    data_channels: int
    image_size: int
    trial: str = ""  # the trial folder it comes from
    fold: int = 0

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        return create_model(self.architecture, in_channels=self.data_channels, image_size=self.image_size,
                            device=device)


class Classifier:
    """A delivered model: ``predict_proba(images)``, ``predict(images)`` at :attr:`threshold`, and its :attr:`card`."""

    def __init__(self, module: Ensemble, members: Sequence[MemberSpec], operating_point: OperatingPoint,
                 card: dict[str, Any] | None = None) -> None:
        sizes = {m.image_size for m in members}
        channels = {m.data_channels for m in members}
        if len(sizes) != 1 or len(channels) != 1:
            raise InputError(f"an ensemble's members must take one image size and channel count; got sizes "
                             f"{sorted(sizes)}, channels {sorted(channels)}")
        self.module = module.eval()
        self.members = tuple(members)
        self.operating_point = operating_point
        self.card = card or {}

    @property
    def threshold(self) -> float:
        """The delivered operating threshold: positive when ``probability >= threshold``."""
        return self.operating_point.threshold

    @property
    def image_size(self) -> int:
        return self.members[0].image_size

    @property
    def channels(self) -> int:
        """Channels of the images it takes (the training data's; a model that wants RGB repeats grey)."""
        return self.members[0].data_channels

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: torch.device | str) -> "Classifier":
        self.module.to(device)
        return self

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray | torch.Tensor, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Positive-class probability of each image: uint8 (0..255) or float (0..1), ``(N, C, H, W)`` or ``(N, H, W)``.

        Images of another size are resized as the training data was
        (trainables.images.resize_images); decode files with
        trainables.images.read_image.
        """
        batch = self.as_input(images)
        out = [self.module(batch[i:i + batch_size].to(self.device)).cpu() for i in range(0, len(batch), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def predict(self, images: np.ndarray | torch.Tensor, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """1 where the probability reaches the delivered threshold, else 0."""
        return (self.predict_proba(images, batch_size=batch_size) >= self.threshold).astype(np.int64)

    def as_input(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``images`` as the ensemble's float ``[N, C, S, S]`` input in [0, 1]; InputError for a shape it cannot take."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise InputError(f"images must be (N, C, H, W) or (N, H, W) with C = 1 or 3; got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise InputError(f"images have {x.shape[1]} channel(s); this model takes {self.channels}")
        if x.dtype == torch.uint8:
            if x.shape[-2:] != (self.image_size, self.image_size):
                x = torch.from_numpy(resize_images(x.numpy(), self.image_size))
            return x.float().div_(255)
        x = x.float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise InputError(f"float images must already be {self.image_size}x{self.image_size}; got "
                             f"{tuple(x.shape[-2:])} (pass uint8 images to have them resized as in training)")
        return x

    # --- loading and saving -----------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str = "cpu") -> "Classifier":
        """The model in an exported folder (``model.json``) or the one an experiment delivered (``best.json``).

        Either may be on a bucket (``s3://bucket/results/<name>``, trainables.storage): its files are read from there.
        """
        folder = user_folder(path)
        if (folder / CARD_FILE).is_file():
            with local_folder(folder) as local:
                return cls._load_exported(local, device)
        if (folder / BEST_FILE).is_file():
            return cls.from_experiment(folder, device=device)
        raise InputError(f"{str(folder)!r} is neither an exported model (no {CARD_FILE}) nor a finished experiment "
                         f"(no {BEST_FILE})")

    @classmethod
    def from_experiment(cls, folder: str | Path | Storage, *, device: torch.device | str = "cpu") -> "Classifier":
        """The deliverable ``best.json`` names, its checkpoints found relative to the experiment folder (or bucket)."""
        folder = folder if isinstance(folder, Storage) else user_folder(folder)
        best = json.loads((folder / BEST_FILE).read_text())
        deliverable = best.get("deliverable")
        if not deliverable or "operating_point" not in best:
            raise InputError(f"{str(folder / BEST_FILE)!r} was written by an older version of this project; run "
                             "the search again (or --resume it) to record its deliverable")
        kept = []
        for member in deliverable["members"]:
            checkpoint = folder / member["checkpoint"]
            try:
                with local_folder(checkpoint) as local:  # a bucket's checkpoint folder downloaded, a local one read in place
                    kept.append(load_kept(local))
            except FileNotFoundError:
                raise InputError(f"the delivered checkpoint {str(checkpoint)!r} is missing") from None
        return cls.from_kept(kept, OperatingPoint.from_json(best["operating_point"]), device=device,
                             trials=[m["trial"] for m in deliverable["members"]], card=best)

    @classmethod
    def from_kept(cls, kept: Sequence[dict[str, Any]], operating_point: OperatingPoint, *,
                  device: torch.device | str = "cpu", trials: Sequence[str] | None = None,
                  card: dict[str, Any] | None = None) -> "Classifier":
        """The ensemble of one or more trials' deliverables (each the ``kept`` part of a checkpoint), all fold models."""
        members, specs = [], []
        for i, deliverable in enumerate(kept):
            cfg = TrialConfig.from_dict(deliverable["config"])
            for fold, state in enumerate(kept_weights(deliverable)):
                spec = MemberSpec(cfg.architecture, int(deliverable["data_channels"]), int(deliverable["image_size"]),
                                  trials[i] if trials else "", fold)
                model = spec.build(device)
                model.load_state_dict(state)
                members.append(Member(model, spec.architecture, spec.data_channels).to(device))
                specs.append(spec)
        return cls(Ensemble(members), specs, operating_point, card)

    @classmethod
    def combine(cls, parts: Sequence["Classifier"], operating_point: OperatingPoint,
                card: dict[str, Any] | None = None) -> "Classifier":
        """The mean of several classifiers (each one trial's models) as one, at ``operating_point``."""
        if len(parts) == 1:
            return cls(parts[0].module, parts[0].members, operating_point, card)
        module = Ensemble([member for part in parts for member in part.module.members])
        return cls(module, [spec for part in parts for spec in part.members], operating_point, card)

    def save(self, folder: str | Path, card: dict[str, Any]) -> None:
        """Write ``card`` as model.json and the weights as safetensors (the folder :meth:`load` reads)."""
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.module, str(folder / WEIGHTS_FILE))
        (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))

    @classmethod
    def _load_exported(cls, folder: Path, device: torch.device | str) -> "Classifier":
        from safetensors.torch import load_model

        card = json.loads((folder / CARD_FILE).read_text())
        specs = [MemberSpec(**member) for member in card["members"]]
        module = Ensemble([Member(spec.build(device), spec.architecture, spec.data_channels) for spec in specs])
        load_model(module, str(folder / WEIGHTS_FILE), device=str(device))
        return cls(module.to(device), specs, OperatingPoint.from_json(card["operating_point"]), card)

    def export_onnx(self, path: str | Path) -> Path:
        """The whole ensemble as ONNX: input ``images`` float32 ``[N, C, S, S]`` in [0, 1], output ``probability`` ``[N]``."""
        return export_onnx(self.module.to("cpu"), path, channels=self.channels, image_size=self.image_size)


def export_onnx(module: nn.Module, path: str | Path, *, channels: int, image_size: int) -> Path:
    """``module`` (float images -> one or more outputs) as ONNX with a dynamic batch, by torch.export (dynamo)."""
    import logging
    import warnings

    example = torch.rand(2, channels, image_size, image_size)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():  # the exporter's own progress lines and deprecations are not the user's business
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(module.eval(), (example,), dynamo=True, input_names=["images"],
                                    output_names=["probability"], dynamic_shapes=({0: batch},), verbose=False)
    program.save(str(path))
    return Path(path)


__all__ = ["BEST_FILE", "CARD_FILE", "Classifier", "Ensemble", "Member", "MemberSpec", "ONNX_FILE", "WEIGHTS_FILE",
           "export_onnx"]
