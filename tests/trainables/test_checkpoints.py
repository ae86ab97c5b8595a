import math

import pyarrow.fs
import pytest
import torch

from tests.conftest import tiny_dataset
from trainables import (
    ENDED_FILE,
    HELD_OUT_FILE,
    KEPT_FILE,
    MANIFEST_FILE,
    RESUME_FILE,
    RESUME_FORMAT,
    CheckpointPolicy,
    TrialConfig,
    asha_rungs,
    get_spec,
    load_kept,
    load_resume,
    read_held_out,
    restore_point,
    restore_points,
    run_trial,
    save_checkpoint,
)


@pytest.mark.parametrize(("grace", "factor", "max_t", "rungs"), [
    (1, 4, 20, {1, 4, 16}), (5, 3, 20, {5, 15}), (1, 3, 20, {1, 3, 9}), (2, 2.5, 30, {2, 5, 13}), (1, 4, 1, {1})])
def test_asha_rungs_are_the_epochs_where_ray_tunes_asha_decides(grace, factor, max_t, rungs):
    # grace x factor^k up to max_t, rounded up: 2 x 2.5^2 = 12.5 is decided after epoch 13.
    assert asha_rungs(grace, factor, max_t) == rungs


def _checkpointed_epochs(cfg, policy):
    reports = []
    run_trial(cfg, tiny_dataset(), spec=get_spec(cfg.architecture), report=lambda metrics, state: reports.append((metrics["epoch"], state)),
              checkpoints=policy)
    return [epoch for epoch, state in reports if state is not None], reports


def test_a_trial_checkpoints_at_stop_epochs_and_its_last_epoch_only():
    cfg = TrialConfig.from_dict({"max_epochs": 5, "patience": 50})
    epochs, reports = _checkpointed_epochs(cfg, CheckpointPolicy(epochs=frozenset({2}), period_s=math.inf))
    assert epochs == [2, 5] and [e for e, _ in reports] == [1, 2, 3, 4, 5]
    assert _checkpointed_epochs(cfg, CheckpointPolicy())[0] == [1, 2, 3, 4, 5]  # the default: every epoch
    assert _checkpointed_epochs(cfg, CheckpointPolicy(period_s=0.0))[0] == [1, 2, 3, 4, 5]


def test_an_early_stopped_trial_checkpoints_its_last_epoch_with_its_kept_weights(tmp_path):
    cfg = TrialConfig.from_dict({"architecture": "cnn_bn", "optimizer": "sgd", "lr": 0.5, "patience": 1,
                                 "max_epochs": 30})
    epochs, reports = _checkpointed_epochs(cfg, CheckpointPolicy(period_s=math.inf))
    last_epoch, last_state = reports[-1]
    assert epochs == [last_epoch] and last_epoch < 30
    save_checkpoint(tmp_path, **last_state)
    assert load_kept(tmp_path)["epoch"] < last_epoch
    # The last checkpoint is the deliverable and its held-out scores: nothing to resume, no optimiser state on disk.
    assert last_state["resume"] is None and load_resume(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [HELD_OUT_FILE, KEPT_FILE, MANIFEST_FILE]
    held = read_held_out(pyarrow.fs.LocalFileSystem(), str(tmp_path))
    assert held["units"] == [(0, 0)] and len(held["scores"]) == 1


def test_a_checkpoint_before_the_last_epoch_holds_the_resume_state_beside_the_deliverable(tmp_path):
    cfg = TrialConfig.from_dict({"max_epochs": 3, "patience": 50})
    _, reports = _checkpointed_epochs(cfg, CheckpointPolicy(epochs=frozenset({1}), period_s=math.inf))
    save_checkpoint(tmp_path, **reports[0][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([HELD_OUT_FILE, KEPT_FILE, MANIFEST_FILE, RESUME_FILE])
    resume = load_resume(tmp_path)
    assert resume["epoch"] == 1 and resume["kept"]["epoch"] == 1 and "optimizer" in resume["folds"][0]
    assert "weights" not in resume and "weights" not in resume["folds"][0]  # the kept weights are stored once, in the deliverable


def _folder(trial, index, *, epoch, resume=True, resume_format=RESUME_FORMAT):
    """A checkpoint folder as Tune leaves it: what save_checkpoint wrote, in the trial's ``checkpoint_<index>``."""
    folder = trial / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    state = {"format": resume_format, "epoch": epoch, "model": {"w": torch.full((64,), float(epoch))}}
    save_checkpoint(folder, kept={"epoch": epoch, "weights": {}, "metrics": {}}, resume=state if resume else None,
                    result={"epoch": epoch, "objective": 0.5})
    return folder


def _points(trial):
    return [(p.index, p.ended, p.result["epoch"]) for p in restore_points(pyarrow.fs.LocalFileSystem(), str(trial))]


def test_restore_takes_the_newest_complete_folder_and_skips_those_cut_short(tmp_path):
    trial = tmp_path / "trial"
    _folder(trial, 3, epoch=4)
    _folder(trial, 4, epoch=5)
    # Folders a crash cut short while Tune copied them: a file short of its size, a file missing,
    # no manifest yet, and files of the right size that do not load.
    short = _folder(trial, 5, epoch=6)
    (short / RESUME_FILE).write_bytes((short / RESUME_FILE).read_bytes()[:100])
    (_folder(trial, 6, epoch=7) / KEPT_FILE).unlink()
    (_folder(trial, 7, epoch=8) / MANIFEST_FILE).unlink()
    garbled = _folder(trial, 8, epoch=9)
    (garbled / RESUME_FILE).write_bytes(b"x" * (garbled / RESUME_FILE).stat().st_size)
    (trial / "checkpoint_tmp").mkdir()  # not a checkpoint folder of Tune's
    assert _points(trial) == [(4, False, 5), (3, False, 4)]
    point = restore_point(pyarrow.fs.LocalFileSystem(), str(trial))
    assert point.path == str(trial / "checkpoint_000004")
    assert point.resume["epoch"] == 5 and point.resume["kept"]["epoch"] == 5  # loaded, with its deliverable


def test_a_resume_state_written_by_an_older_version_is_not_continued(tmp_path):
    _folder(tmp_path, 3, epoch=4)
    _folder(tmp_path, 4, epoch=5, resume_format=None)  # before RESUME_FORMAT: no "folds", a KeyError mid-resume
    _folder(tmp_path, 5, epoch=6, resume_format=RESUME_FORMAT + 1)
    assert _points(tmp_path) == [(3, False, 4)]


def test_an_ended_trial_is_recognised_by_its_last_folder_even_after_retention_deleted_files(tmp_path):
    _folder(tmp_path / "final", 2, epoch=3, resume=False)  # written by the trial's last epoch
    assert _points(tmp_path / "final") == [(2, True, 3)]
    stopped = _folder(tmp_path / "stopped", 0, epoch=1)  # a scheduler stopped it: marked, then files deleted
    (stopped / ENDED_FILE).touch()
    for name in (RESUME_FILE, KEPT_FILE):
        (stopped / name).unlink()
    assert _points(tmp_path / "stopped") == [(0, True, 1)]
    # The same files missing without the mark: a copy cut short, never taken for an ended trial.
    (stopped / ENDED_FILE).unlink()
    assert _points(tmp_path / "stopped") == [] and restore_point(pyarrow.fs.LocalFileSystem(), str(tmp_path)) is None
