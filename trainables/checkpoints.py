"""A trial's checkpoint: what it holds, where it is written, when a trial writes one, which one it resumes from.

A checkpoint folder (``checkpoint_000012`` in the trial's folder; Tune names
it) holds up to five files, because they live for different times:

- ``kept.pt``, the trial's deliverable: its kept (lowest validation loss)
  weights, config, kept metrics and the data shape they take. It outlives
  the trial, for as long as the experiment's retention keeps it
  (``search.retention``).
- ``resume.pt``, what continues a running trial: current weights, optimiser,
  random generators (CPU and CUDA), early-stopping counters.
  It exists only while a trial can still continue: a trial's last checkpoint
  has none, and the search deletes it when a scheduler stops the trial.
- ``held_out.pt``: each of its models' scores on its own held-out images at
  its kept epoch (its fold's, else the validation split), with the seed
  and fold of each. A few KiB; it stays with the trial's results, so that
  every finished trial can be compared with every other on the same images
  (``search.comparison``), after retention deleted its weights.
- ``manifest.json``: the metrics reported with the checkpoint, every row
  the trial reported up to it (its learning curve: 2.7-3.1 KB an epoch with
  5 folds, measured on a smoke run), and the size of each file above. A
  folder whose files do not match it was being copied when the search died.
- ``ended``, empty: written by the search into a trial's last checkpoint when
  the trial ends, before it deletes anything there. The trial is not to train
  again; files missing from the manifest were deleted on purpose.

Lifecycle. Tune copies each reported checkpoint into a new folder and keeps
them all (``CheckpointConfig(num_to_keep=None)``: with a limit, Tune would
snapshot the whole experiment at every checkpoint). The search deletes a
trial's previous folder as soon as Tune has the next one, and the resume
state when the trial ends (``search.retention``), so a trial has one folder,
two while the next is being copied.

Restoring. Tune snapshots the experiment periodically, so after a crash it
may name a checkpoint the search has deleted since (superseded by one it had
not recorded yet), or none. A trial therefore resumes from the newest
complete folder among its ``checkpoint_*`` folders (:func:`restore_point`),
whatever Tune names; ``trainables.trainable.train_fn`` reports it again when Tune
did not name it, so that Tune records it. (Tune will not restore a trial
whose named folder is gone: ``--resume`` recreates such folders empty first,
``search.retention.recreate_named_folders``.)

The resume state of a ResNet50 (weights and two Adam moments) is about 270 MiB;
its deliverable 90 MiB (benchmarks/disk_usage.py).
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
import torch

from trainables.ray_compat import CHECKPOINT_FOLDER_PREFIX, asha_rung_epochs

if TYPE_CHECKING:  # Ray's Checkpoint: a folder on any storage Ray writes to
    from ray.tune import Checkpoint

KEPT_FILE = "kept.pt"
HELD_OUT_FILE = "held_out.pt"
RESUME_FILE = "resume.pt"
MANIFEST_FILE = "manifest.json"
ENDED_FILE = "ended"
# The layout of resume.pt. Raise it when the layout changes: a trial finds a resume state of another
# layout unusable and starts again from its first epoch (a KeyError mid-resume otherwise). 2: per fold;
# 3: folds over the train split, each fold model's scores on the validation (calibration) split kept.
RESUME_FORMAT = 3


@dataclass(frozen=True)
class CheckpointPolicy:
    """When a trial hands Ray Tune a checkpoint.

    A checkpoint costs the trial a write of up to 360 MiB (a ResNet50's resume
    state and deliverable) and the driver some bookkeeping. It once cost far
    more: while Tune kept one checkpoint per trial (``num_to_keep=1``), every
    checkpoint forced a snapshot of the whole experiment, whose cost grows
    with the number of trials (400 no-op trials of 5 reports: 370 s with a
    checkpoint per report, 35 s without; benchmarks/checkpoint_overhead.py).
    Tune now keeps them all and the search deletes superseded ones
    (``search.retention``), so nothing is forced; still, a trial writes a
    checkpoint only where it is needed:

    - after its last epoch (early stop or ``max_epochs``): the kept weights the
      analysis reloads;
    - after each epoch in ``epochs``: where a scheduler may stop it (ASHA's
      rungs), so that a stopped trial's checkpoint also holds its kept weights;
    - when ``period_s`` seconds of training have passed since the last one:
      the most work a crash can lose (0: every epoch).
    """

    epochs: frozenset[int] = frozenset()
    period_s: float = 0.0

    def due(self, epoch: int, *, last: bool, seconds_since_last: float) -> bool:
        """Whether the report after ``epoch`` carries a checkpoint."""
        return last or epoch in self.epochs or seconds_since_last >= self.period_s


EVERY_EPOCH = CheckpointPolicy()


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> frozenset[int]:
    """The epochs after which Ray Tune's ASHA (one bracket) compares a trial with its rung, up to ``max_t``."""
    return frozenset(math.ceil(milestone) for milestone in asha_rung_epochs(grace_period, reduction_factor, max_t))


def save_checkpoint(folder: str | Path, *, kept: dict[str, Any], resume: dict[str, Any] | None,
                    result: dict[str, Any] | None = None, history: list[dict[str, Any]] | None = None) -> Path:
    """Write a trial's deliverable, its resume state while it can continue, and their manifest into ``folder``.

    ``result`` is what the trial reports with the checkpoint: a trial restored
    from this folder reports it again when Tune had not recorded it.
    ``history`` is every row the trial reported up to and with it. Tune's own
    record of them (``result.json``) reaches the storage only with its
    periodic snapshots, so after a crash this is where the rows in between
    are found (:func:`read_history`).
    """
    folder = Path(folder)
    torch.save(kept, folder / KEPT_FILE)
    if kept.get("fold_scores"):
        torch.save({"units": kept["units"], "scores": kept["fold_scores"]}, folder / HELD_OUT_FILE)
    if resume is not None:
        torch.save(resume, folder / RESUME_FILE)
    files = {name: (folder / name).stat().st_size for name in (KEPT_FILE, HELD_OUT_FILE, RESUME_FILE)
             if (folder / name).exists()}
    manifest = {"result": result or {}, "history": history or [], "files": files}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, default=_plain))
    return folder


def _plain(value: Any) -> Any:
    # numpy scalars, should a metric arrive as one; json writes Python numbers only.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"a reported metric is not a number or string: {value!r}")


def load_kept(folder: str | Path) -> dict[str, Any]:
    """The deliverable that :func:`save_checkpoint` wrote (FileNotFoundError once retention deleted it)."""
    # weights_only: a checkpoint is data (tensors, numbers, strings), never code to unpickle.
    return torch.load(Path(folder) / KEPT_FILE, map_location="cpu", weights_only=True)


def kept_weights(kept: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The state dicts of a deliverable's models, one per fold (a single dict in checkpoints before folds)."""
    weights = kept["weights"]
    return weights if isinstance(weights, list) else [weights]


def fold_metrics(kept: dict[str, Any]) -> list[dict[str, float]]:
    """A deliverable's kept validation metrics, per fold."""
    return kept.get("fold_metrics") or [kept["metrics"]]


def read_held_out(fs: pyarrow.fs.FileSystem, folder: str) -> dict[str, Any] | None:
    """The ``held_out.pt`` of a checkpoint folder on any storage: ``units`` [(seed, fold)] and ``scores``
    [(y_true, y_score)], one per model; None where the folder has none (written before it was kept)."""
    path = f"{folder.rstrip('/')}/{HELD_OUT_FILE}"
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=True)


def load_resume(folder: str | Path) -> dict[str, Any] | None:
    """The resume state and deliverable of a checkpoint, or None for a finished trial's (no resume state)."""
    path = Path(folder) / RESUME_FILE
    if not path.exists():
        return None
    return {**torch.load(path, map_location="cpu", weights_only=True), "kept": load_kept(folder)}


@dataclass(frozen=True)
class RestorePoint:
    """The checkpoint folder a trial continues from: where it is, what was reported with it, and its state.

    ``resume`` is the resume state with its deliverable (what ``run_trial``'s
    ``resume_from`` takes), or None when the trial has ended; ``history`` the
    rows reported up to it.
    """

    path: str
    index: int
    result: dict[str, Any]
    resume: dict[str, Any] | None
    history: tuple[dict[str, Any], ...] = ()

    @property
    def ended(self) -> bool:
        return self.resume is None


def checkpoint_folders(fs: pyarrow.fs.FileSystem, trial_path: str) -> list[tuple[int, str]]:
    """A trial's ``checkpoint_*`` folders on ``fs`` as (index, path), newest (highest index) first."""
    folders = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True)):
        suffix = info.base_name[len(CHECKPOINT_FOLDER_PREFIX):]
        if (info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith(CHECKPOINT_FOLDER_PREFIX)
                and suffix.isdigit()):
            folders.append((int(suffix), info.path))
    return sorted(folders, reverse=True)


def complete_manifest(fs: pyarrow.fs.FileSystem, path: str) -> dict[str, Any] | None:
    """The manifest of a complete checkpoint folder, with ``ended`` added; None for a folder that is not complete.

    Complete: every file of the manifest is there at its size, or the folder
    is marked ended (the search deleted files from it on purpose). A folder
    without a readable manifest is not: it was being copied, or it predates
    manifests. Ended: marked so, or written without a resume state (a trial's
    last checkpoint).
    """
    sizes = {info.base_name: info.size for info in fs.get_file_info(pyarrow.fs.FileSelector(path))
             if info.type == pyarrow.fs.FileType.File}
    manifest = _read_manifest(fs, path) if MANIFEST_FILE in sizes else None
    if manifest is None:
        return None
    marked = ENDED_FILE in sizes
    if not marked and any(sizes.get(name) != size for name, size in manifest["files"].items()):
        return None
    return {**manifest, "ended": marked or RESUME_FILE not in manifest["files"]}


def restore_points(fs: pyarrow.fs.FileSystem, trial_path: str) -> Iterator[RestorePoint]:
    """A trial's complete checkpoints, newest first, loaded.

    Skipped: folders whose files do not load, and resume states of another
    :data:`RESUME_FORMAT` (written by an older version of this project).
    """
    from ray.tune import Checkpoint  # downloads a folder from remote storage; a local one is read in place

    for index, path in checkpoint_folders(fs, trial_path):
        manifest = complete_manifest(fs, path)
        if manifest is None:
            continue
        history = tuple(manifest.get("history", ()))
        if manifest["ended"]:
            yield RestorePoint(path, index, manifest["result"], resume=None, history=history)
            continue
        try:
            with Checkpoint(path, filesystem=fs).as_directory() as folder:
                resume = load_resume(folder)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):  # torch's errors for a bad file
            continue
        if resume is not None and resume.get("format") == RESUME_FORMAT:
            yield RestorePoint(path, index, manifest["result"], resume, history)


def restore_point(fs: pyarrow.fs.FileSystem, trial_path: str) -> RestorePoint | None:
    """The newest complete checkpoint of the trial whose folder is ``trial_path``; None if it has none."""
    return next(restore_points(fs, trial_path), None)


def read_history(checkpoint: Checkpoint | None) -> list[dict[str, Any]]:
    """The rows a trial had reported when it wrote ``checkpoint`` (its manifest's); [] when there are none."""
    manifest = _read_manifest(checkpoint.filesystem, checkpoint.path.rstrip("/")) if checkpoint is not None else None
    return list(manifest.get("history", [])) if manifest is not None else []


def _read_manifest(fs: pyarrow.fs.FileSystem, path: str) -> dict[str, Any] | None:
    """The manifest of the checkpoint folder ``path``; None without one (older experiments) or cut short."""
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST_FILE}") as stream:
            return json.loads(stream.read())
    except (OSError, ValueError):
        return None


def delete_folder(fs: pyarrow.fs.FileSystem, path: str) -> bool:
    """Delete a checkpoint folder on any storage Ray writes to; False when it was not there."""
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        return False
    return True


def delete_checkpoint(checkpoint: Checkpoint) -> bool:
    """Delete a whole checkpoint folder; False when it was not there."""
    return delete_folder(checkpoint.filesystem, checkpoint.path.rstrip("/"))


def mark_ended(checkpoint: Checkpoint) -> bool:
    """Mark a trial's last checkpoint ended (an empty ``ended`` file); False when the folder is gone."""
    path = checkpoint.path.rstrip("/")
    if checkpoint.filesystem.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return False  # on object stores, writing the marker would bring a deleted folder back
    with checkpoint.filesystem.open_output_stream(f"{path}/{ENDED_FILE}"):
        pass
    return True


def delete_checkpoint_file(checkpoint: Checkpoint, name: str) -> bool:
    """Delete ``name`` from a checkpoint folder on any storage Ray writes to; False when it was not there."""
    try:
        checkpoint.filesystem.delete_file(f"{checkpoint.path.rstrip('/')}/{name}")
    except FileNotFoundError:
        return False
    return True


def has_checkpoint_file(checkpoint: Checkpoint | None, name: str) -> bool:
    """Whether a checkpoint folder still holds ``name``."""
    if checkpoint is None:
        return False
    info = checkpoint.filesystem.get_file_info(f"{checkpoint.path.rstrip('/')}/{name}")
    return info.type == pyarrow.fs.FileType.File
