"""The Ray Tune function trainable: one trial of a config, its data from the object store, resumable.

``train_fn`` picks the trial's data out of the object store, continues from
the trial's newest complete checkpoint when it has one
(trainables.checkpoints), and runs :func:`trainables.train.run_trial`,
reporting each epoch to Tune.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from trainables.checkpoints import (
    EVERY_EPOCH,
    CheckpointPolicy,
    RestorePoint,
    checkpoint_folders,
    delete_folder,
    restore_point,
    save_checkpoint,
)
from trainables.config import TrialConfig
from trainables.dataset import Dataset
from trainables.models import get_spec
from trainables.ray_compat import TrialStorage, trial_storage
from trainables.train import run_trial

def train_fn(config: dict[str, Any], *, datasets: dict[int, Dataset], imagenet_states: dict[str, dict] | None = None,
             image_size: int | None = None, checkpoints: CheckpointPolicy = EVERY_EPOCH) -> None:
    """Ray Tune function trainable: one trial of ``config``.

    Wrap it with ``tune.with_parameters`` so that ``datasets`` (image size ->
    :class:`Dataset`) and ``imagenet_states`` (architecture -> state dict) go
    through the object store once, not into every trial's closure. The default
    ``checkpoints`` policy (every epoch) is right under any scheduler; a search
    that knows where its scheduler stops trials passes a leaner one. A trial
    given a fraction of a GPU caps its memory to that fraction.
    """
    import ray
    from ray import tune

    started = time.perf_counter()
    cfg = TrialConfig.from_dict(config)
    spec = get_spec(cfg.architecture)  # resolved once; the trial carries it
    size = spec.trial_image_size(override=cfg.image_size, source_default=image_size)
    resources = ray.get_runtime_context().get_assigned_resources()
    _match_threads_to_cpus(resources.get("CPU"))
    node_id = ray.get_runtime_context().get_node_id()  # which node of a cluster ran the trial

    point = _restore(trial_storage(), recorded=tune.get_checkpoint())
    if point is not None and point.ended:
        return  # a trial that had ended when the driver died, before Tune's last snapshot said so
    resume_from = point.resume if point is not None else None
    history = list(point.history) if point is not None else []  # every row so far, carried by each checkpoint

    def report(metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        # training_iteration is the epoch: a trial restored from a checkpoint Tune had not recorded
        # continues at that checkpoint's epoch, where Tune's own count of reports would not be.
        metrics = {**metrics, "node_id": node_id, "training_iteration": metrics["epoch"]}
        history.append(metrics)
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, kept=state["kept"], resume=state["resume"], result=metrics, history=history)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    run_trial(cfg, datasets[size], spec=spec, report=report, imagenet_state=(imagenet_states or {}).get(cfg.architecture),
              gpu_share=resources.get("GPU", 0.0), resume_from=resume_from, started=started, checkpoints=checkpoints)


def _restore(storage: TrialStorage, *, recorded: Any) -> RestorePoint | None:
    """Where the trial stands: its newest complete checkpoint, made the one Tune records; None for a fresh start.

    ``storage`` is the trial's storage (trainables.ray_compat: its folder,
    the file system, the number of its next checkpoint folder) and ``recorded`` the
    checkpoint Tune names for the trial. Tune snapshots the experiment every
    so often, so after a crash it may name an older checkpoint than the
    trial's newest, one the search has deleted since (recreated empty by
    search.retention.recreate_named_folders, as Tune insists on it), or none;
    a folder may also have been cut short by the crash. The newest complete
    folder wins; the others go, but for the one Tune names. When Tune did not
    name it, its result is reported again with a copy of it, so that Tune
    records where the trial stands (and, for a trial that had ended, its final
    result), and it goes too.
    """
    from ray import tune

    fs, trial_path = storage.filesystem, storage.trial_path
    folders = checkpoint_folders(fs, trial_path)
    if not folders:
        return None
    # Tune numbers a trial's next folder after the last one it recorded; newer ones on disk would be
    # written over. Number on after the newest there is.
    storage.number_after(folders[0][0])
    point = restore_point(fs, trial_path)
    if point is None:  # the trial's own folders, and what the search's logs forward to the console
        print(f"{Path(trial_path).name}: none of its {len(folders)} checkpoint folder(s) can be continued (cut short, "
              "or written by an older version of this project); it starts again from epoch 1", flush=True)
    named = recorded.path.rstrip("/") if recorded is not None else None
    for _, path in folders:
        # Superseded, or cut short by the crash. The folder Tune names stays until Tune names
        # another (search.retention deletes it then): should this worker die first, Tune's
        # retry restores from it and fails if it is gone.
        if path != named and (point is None or path != point.path):
            delete_folder(fs, path)
    if point is None or point.path == named:
        return point
    with tune.Checkpoint(point.path, filesystem=fs).as_directory() as folder:
        tune.report(point.result, checkpoint=tune.Checkpoint.from_directory(folder))
    delete_folder(fs, point.path)  # Tune has its copy now
    return point


def _match_threads_to_cpus(cpus: float | None) -> None:
    """One torch thread per CPU Ray gave this trial, so concurrent trials do not oversubscribe."""
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
