import copy
import dataclasses
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.fs
import pytest
import ray
import torch
from ray import tune
from torch import nn

from tests.conftest import tiny_dataset
from trainables import (
    EVERY_EPOCH,
    RESUME_FILE,
    EarlyStopping,
    Split,
    TrialConfig,
    average_scores,
    data_device,
    get_spec,
    kept_model_from,
    read_history,
    run_trial,
    save_checkpoint,
    score_split,
    train_fn,
)
from trainables import trainable
from trainables.operating import operating_point

# On the CPU a run repeats bit for bit. GPU kernels (cuDNN's autotuned choices, atomics in
# backward passes) may differ in the last bits between runs, so there values are compared closely.
EXACT = data_device().type == "cpu"


def _same(a, b):
    assert a == b if EXACT else a == pytest.approx(b, rel=1e-3, abs=1e-5)


def _run(cfg, dataset, resume_from=None):
    reports = []
    run, *_ = run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=lambda m, s: reports.append((m, copy.deepcopy(s))), resume_from=resume_from)
    return run.model, run.stopper, reports


def test_early_stopping_keeps_the_lowest_loss_weights():
    model = nn.Linear(2, 2)
    stopper = EarlyStopping(patience=2)
    losses = [0.9, 0.5, 0.7, 0.6]
    weights_at_best = None
    for epoch, loss in enumerate(losses, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        if stopper.step(epoch, loss, model, {"val_loss": loss}):
            weights_at_best = model.weight.clone()
    assert stopper.best_epoch == 2 and stopper.should_stop
    assert torch.equal(stopper.best_state["weight"], weights_at_best)
    assert stopper.best_state["weight"].data_ptr() != model.weight.data_ptr()  # a copy, not a view


def test_trial_restores_its_best_epoch_and_stops_on_patience():
    # lr 0.1 with SGD makes the validation loss climb after a few epochs.
    cfg = TrialConfig.from_dict({"architecture": "cnn_bn", "optimizer": "sgd", "lr": 0.5, "patience": 1,
                                 "max_epochs": 8, "batch_size": 8})
    model, stopper, reports = _run(cfg, tiny_dataset())
    metrics = [m for m, _ in reports]
    assert metrics[-1]["stopped_early"] and len(metrics) < 8
    best = min(metrics, key=lambda m: m["val_loss"])
    assert stopper.best_epoch == best["epoch"] == metrics[-1]["kept_epoch"]
    assert metrics[-1]["kept_val_loss"] == best["val_loss"]
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), stopper.best_state[k]), k  # the kept copy lives on the CPU


def test_every_epoch_reports_the_study_metrics():
    cfg = TrialConfig.from_dict({"max_epochs": 2, "strategy": "both", "augment": True})
    _, _, reports = _run(cfg, tiny_dataset())
    assert len(reports) == 2
    for key in ("train_loss", "val_loss", "val_recall", "val_precision", "val_f1", "val_auc", "val_ap",
                "val_balanced_accuracy", "objective", "tiebroken_objective", "kept_val_recall"):
        assert all(key in m for m, _ in reports), key


def test_trials_are_fresh_and_seeded():
    cfg = TrialConfig.from_dict({"max_epochs": 2, "seed": 3})
    data = tiny_dataset()
    _, _, first = _run(cfg, data)
    _run(TrialConfig.from_dict({"max_epochs": 3, "seed": 9, "lr": 0.01}), data)  # another trial in between
    _, _, again = _run(cfg, data)
    _same([m["val_loss"] for m, _ in first], [m["val_loss"] for m, _ in again])
    _, _, other_seed = _run(TrialConfig.from_dict({"max_epochs": 2, "seed": 4}), data)
    assert [m["val_loss"] for m, _ in first] != [m["val_loss"] for m, _ in other_seed]


def test_early_stopping_waits_min_epochs_and_ignores_gains_below_min_delta():
    model = nn.Linear(2, 2)
    stopper = EarlyStopping(patience=1, min_delta=0.05, min_epochs=4)
    for epoch, loss in enumerate([0.9, 0.88, 0.87, 0.5], start=1):
        stopper.step(epoch, loss, model, {})
        assert not stopper.should_stop or epoch >= 4
    assert stopper.best_epoch == 4  # 0.88 and 0.87 were not lower by more than 0.05
    stopper.step(5, 0.49, model, {})
    assert stopper.should_stop and stopper.best_epoch == 4


def test_cosine_schedule_decays_the_learning_rate_and_changes_the_run():
    data = tiny_dataset()
    _, _, constant = _run(TrialConfig.from_dict({"max_epochs": 3}), data)
    _, _, cosine = _run(TrialConfig.from_dict({"max_epochs": 3, "lr_schedule": "cosine"}), data)
    assert constant[0][0]["val_loss"] == cosine[0][0]["val_loss"]  # the first epoch runs at the full rate
    assert constant[-1][0]["val_loss"] != cosine[-1][0]["val_loss"]
    assert cosine[-1][1]["kept"]["config"]["lr_schedule"] == "cosine"


def test_every_epoch_reports_the_operating_point_at_the_target_recall():
    _, _, reports = _run(TrialConfig.from_dict({"max_epochs": 2, "target_recall": 0.8}), tiny_dataset())
    for metrics, _ in reports:
        assert 0 <= metrics["val_threshold_at_recall"] <= 1 and 0 <= metrics["val_specificity_at_recall"] <= 1
    assert reports[-1][1]["kept"]["metrics"]["val_threshold_at_recall"] == reports[-1][0]["kept_val_threshold_at_recall"]


@pytest.mark.parametrize("schedule, seeds", [("constant", 1), ("cosine", 1), ("constant", 2)])
def test_resuming_from_a_checkpoint_continues_the_same_run(schedule, seeds):
    cfg = TrialConfig.from_dict({"max_epochs": 4, "augment": True, "strategy": "oversampling", "lr_schedule": schedule,
                                 "seeds": seeds})
    data = tiny_dataset()
    _, _, straight = _run(cfg, data)
    after_two = straight[1][1]
    _, _, resumed = _run(cfg, data, resume_from={**after_two["resume"], "kept": after_two["kept"]})
    assert [m["epoch"] for m, _ in resumed] == [3, 4]
    _same([m["val_loss"] for m, _ in resumed], [m["val_loss"] for m, _ in straight[2:]])


def test_kept_model_from_a_checkpoint_scores_like_the_trial():
    cfg = TrialConfig.from_dict({"max_epochs": 3})
    data = tiny_dataset()
    model, _, reports = _run(cfg, data)
    reloaded = kept_model_from(reports[-1][1]["kept"])
    assert reloaded.config == cfg and reloaded.folds == 1
    ours, theirs = reloaded.scores(data.val), score_split(model.eval(), cfg, data.val)
    assert (ours.y_true == theirs.y_true).all()
    _same(ours.y_score.tolist(), theirs.y_score.tolist())
    assert reloaded.threshold == reports[-1][0]["kept_val_threshold_at_recall"]


def test_a_diverged_trial_ends_as_diverged_with_the_worst_objective_instead_of_raising():
    cfg = TrialConfig.from_dict({"max_epochs": 5, "optimizer": "sgd", "lr": 1e12})
    _, stopper, reports = _run(cfg, tiny_dataset())
    last, state = reports[-1]
    assert last["diverged"] and len(reports) < 5
    assert last["objective"] == -math.inf and last["tiebroken_objective"] == -math.inf
    assert state is None or state["resume"] is None  # a diverged trial is over


def test_a_trial_with_folds_reports_fold_means_and_errors_and_delivers_every_fold_model():
    cfg = TrialConfig.from_dict({"max_epochs": 3, "folds": 3})
    data = tiny_dataset()
    reports = []
    runs = run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: reports.append((m, copy.deepcopy(s))))
    metrics, state = reports[-1]
    assert len(runs) == 3 and metrics["folds_training"] == 3
    fold_losses = [run.stopper.best_metrics["val_loss"] for run in runs]
    assert metrics["kept_val_loss"] == pytest.approx(np.mean(fold_losses))
    assert metrics["kept_val_loss_se"] == pytest.approx(np.std(fold_losses, ddof=1) / np.sqrt(3))
    assert metrics["objective"] == metrics["kept_val_specificity_at_recall"]  # the fold mean (a ranking metric)

    kept = state["kept"]
    assert len(kept["weights"]) == 3
    delivered = kept_model_from(kept)
    # Out-of-fold: every train image scored once, by the one fold model that did not train on it.
    assert sorted(delivered.out_of_fold.y_true) == sorted(data.train.labels)
    # The threshold is the fold ensemble's, set on the validation split that no fold model trained or stopped on.
    ensemble = delivered.validation_scores(data.val)
    assert delivered.operating_point.scores == "the mean of its 3 fold models' validation"
    assert delivered.operating_point.positives == data.val.class_counts()[1]
    assert delivered.threshold == operating_point(ensemble.y_true, ensemble.y_score, target_recall=0.9)[
        "threshold_at_recall"]
    each = [score_split(run.model.eval(), cfg, data.test).y_score for run in runs]
    _same(delivered.scores(data.test).y_score.tolist(), np.mean(each, axis=0).tolist())


@pytest.mark.parametrize("folds", [1, 3])
def test_the_test_split_cannot_influence_a_trial(folds):
    """Flipped test labels and noise for test images: every report is the same, so the choice is too."""
    cfg = TrialConfig.from_dict({"max_epochs": 2, "folds": folds})
    data = tiny_dataset()
    rng = np.random.default_rng(1)
    tampered = dataclasses.replace(data, test=Split(rng.integers(0, 255, data.test.images.shape, dtype=np.uint8),
                                                    1 - data.test.labels))
    original, again = _reports(cfg, data), _reports(cfg, tampered)
    drop = {"setup_s"}  # a clock
    for (a, _), (b, _) in zip(original, again, strict=True):
        assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop} \
            if EXACT else a["objective"] == pytest.approx(b["objective"], abs=1e-4)


def _reports(cfg, dataset):
    reports = []
    run_trial(cfg, dataset, spec=get_spec(cfg.architecture), report=lambda m, s: reports.append((m, None)))
    return reports


def test_a_trial_with_folds_resumes_where_it_stopped():
    cfg = TrialConfig.from_dict({"max_epochs": 3, "folds": 2, "augment": True, "strategy": "oversampling"})
    data = tiny_dataset()
    straight = []
    run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: straight.append((m, copy.deepcopy(s))))
    after_one = straight[0][1]
    resumed = []
    run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: resumed.append((m, s)),
              resume_from={**after_one["resume"], "kept": after_one["kept"]})
    assert [m["epoch"] for m, _ in resumed] == [2, 3]
    _same([m["val_loss"] for m, _ in resumed], [m["val_loss"] for m, _ in straight[1:]])
    _same(resumed[-1][0]["kept_oof_auc"], straight[-1][0]["kept_oof_auc"])

@dataclasses.dataclass
class _FakeStorage:
    """What train_fn asks of trainables.ray_compat.TrialStorage."""

    filesystem: pyarrow.fs.FileSystem
    trial_path: str
    index: int  # of the trial's last checkpoint folder

    def number_after(self, index):
        self.index = max(self.index, index)


class _FakeTune:
    """What train_fn asks of Tune, in this process: its storage of one trial folder, its recorded checkpoint,
    and a report that copies a checkpoint into the next numbered folder, as Tune persists one."""

    def __init__(self, trial, *, index, recorded=None):
        self.storage = _FakeStorage(pyarrow.fs.LocalFileSystem(), str(trial), index)
        self.recorded = recorded
        self.reports = []

    def report(self, metrics, checkpoint=None):
        name = None
        if checkpoint is not None:
            self.storage.index += 1
            name = f"checkpoint_{self.storage.index:06d}"
            shutil.copytree(checkpoint.path, Path(self.storage.trial_path) / name)
        self.reports.append((dict(metrics), name))

    def install(self, monkeypatch):
        monkeypatch.setattr(tune, "report", self.report)
        monkeypatch.setattr(tune, "get_checkpoint", lambda: self.recorded)
        monkeypatch.setattr(trainable, "trial_storage", lambda: self.storage)
        monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(get_assigned_resources=dict,
                                                                                 get_node_id=lambda: "node"))


RESTORED = {"max_epochs": 4, "patience": 50, "image_size": 16}


def _checkpoint_folders(trial, reports):
    """Each checkpointed report of a straight run saved as Tune numbers them, with the rows so far; the last folder."""
    rows, index = [], 0
    for metrics, state in reports:
        rows.append({**metrics, "training_iteration": metrics["epoch"]})
        if state is None:
            continue
        folder = trial / f"checkpoint_{index:06d}"
        folder.mkdir(parents=True)
        save_checkpoint(folder, **state, result=rows[-1], history=list(rows))
        index += 1
    return folder


def test_a_restored_trial_continues_from_its_newest_complete_folder_not_from_the_deleted_one_tune_names(
        tmp_path, monkeypatch):
    data = tiny_dataset()
    _, _, straight = _run(TrialConfig.from_dict(RESTORED), data)
    trial = tmp_path / "trial"
    _checkpoint_folders(trial, straight[:3])  # epochs 1-3 checkpointed before the crash
    recorded = tune.Checkpoint.from_directory(str(trial / "checkpoint_000000"))  # the last snapshot's
    shutil.rmtree(trial / "checkpoint_000000")  # superseded, so deleted by the search,
    (trial / "checkpoint_000000").mkdir()  # and recreated empty for Tune to restore (recreate_named_folders)
    (trial / "checkpoint_000002" / RESUME_FILE).write_bytes(b"cut short")  # the crash came mid-copy
    fake = _FakeTune(trial, index=0, recorded=recorded)
    fake.install(monkeypatch)
    train_fn(RESTORED, datasets={16: data}, checkpoints=EVERY_EPOCH)
    # Epoch 2 reported again, with a copy of its folder numbered after the newest there was, so that
    # Tune records it; then epochs 3 and 4 as the straight run had them.
    assert [(m["epoch"], m["training_iteration"], name) for m, name in fake.reports] == [
        (2, 2, "checkpoint_000003"), (3, 3, "checkpoint_000004"), (4, 4, "checkpoint_000005")]
    _same([m["val_loss"] for m, _ in fake.reports], [m["val_loss"] for m, _ in straight[1:]])
    # The named folder stays for the search to delete once Tune names another; the others are gone.
    assert sorted(p.name for p in trial.iterdir()) == [
        "checkpoint_000000", "checkpoint_000003", "checkpoint_000004", "checkpoint_000005"]
    # The newest folder carries every row, those before the restore point too (Tune's record may lack them).
    history = read_history(tune.Checkpoint.from_directory(str(trial / "checkpoint_000005")))
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    _same([row["val_loss"] for row in history], [m["val_loss"] for m, _ in straight])


def test_a_restored_trial_that_had_ended_reports_its_final_result_once_unless_tune_had_it(tmp_path, monkeypatch):
    _, _, straight = _run(TrialConfig.from_dict(RESTORED), tiny_dataset())
    trial = tmp_path / "trial"
    last = _checkpoint_folders(trial, straight)  # checkpoint_000003: the last epoch's, no resume state
    # The last snapshot named epoch 2's checkpoint (and had epoch 2's result); the folders of epochs 1-3
    # are still there, as when the driver dies before the search deletes superseded ones.
    fake = _FakeTune(trial, index=1, recorded=tune.Checkpoint.from_directory(str(trial / "checkpoint_000001")))
    fake.install(monkeypatch)
    train_fn(RESTORED, datasets={16: tiny_dataset()}, checkpoints=EVERY_EPOCH)
    assert [(m["epoch"], m["objective"], name) for m, name in fake.reports] == [
        (4, straight[-1][0]["objective"], "checkpoint_000004")]
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000001", "checkpoint_000004"]
    # Tune's snapshot named the last checkpoint: it has the final result too, nothing is reported.
    fake = _FakeTune(trial, index=4, recorded=tune.Checkpoint.from_directory(str(trial / "checkpoint_000004")))
    fake.install(monkeypatch)
    train_fn(RESTORED, datasets={16: tiny_dataset()}, checkpoints=EVERY_EPOCH)
    assert fake.reports == [] and not last.exists() and (trial / "checkpoint_000004").exists()


def test_seed_replicates_train_each_fold_under_every_seed_and_rank_their_mean():
    cfg = TrialConfig.from_dict({"max_epochs": 2, "folds": 2, "seeds": 2, "seed": 7})
    data = tiny_dataset()
    reports = []
    runs = run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: reports.append((m, copy.deepcopy(s))))
    metrics, state = reports[-1]
    assert [(run.replicate, run.fold) for run in runs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # Each seed's models start from their own weights, on the same folds as the other seed's.
    first = [next(iter(run.model.state_dict().values())) for run in runs]
    assert not torch.equal(first[0], first[2]) and not torch.equal(first[0], first[1])
    assert all(torch.equal(a.val_loader.labels, b.val_loader.labels) for a, b in zip(runs[:2], runs[2:]))
    per_model = [run.stopper.best_metrics["val_specificity_at_recall"] for run in runs]
    assert metrics["kept_val_specificity_at_recall"] == pytest.approx(np.mean(per_model))
    assert metrics["kept_val_specificity_at_recall_se"] == pytest.approx(np.std(per_model, ddof=1) / 2)
    kept = state["kept"]
    assert kept["units"] == [(0, 0), (0, 1), (1, 0), (1, 1)] and len(kept["weights"]) == 4
    delivered = kept_model_from(kept)
    assert (delivered.folds, delivered.seeds, len(delivered.classifier.members)) == (2, 2, 4)
    assert delivered.operating_point.scores == "the mean of its 2 seeds x 2 folds' validation"


def test_seed_replicates_without_folds_are_judged_on_validation_and_deliver_their_mean():
    cfg = TrialConfig.from_dict({"max_epochs": 2, "seeds": 3})
    data = tiny_dataset()
    reports = []
    runs = run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: reports.append((m, copy.deepcopy(s))))
    kept = reports[-1][1]["kept"]
    assert len(runs) == 3 and "kept_oof_auc" not in reports[-1][0]  # no folds, no out-of-fold scores
    delivered = kept_model_from(kept)
    ensemble = average_scores([run.stopper.best_scores for run in runs])
    assert delivered.operating_point.scores == "the mean of its 3 seeds' validation"
    assert delivered.threshold == operating_point(ensemble.y_true, ensemble.y_score, target_recall=0.9)[
        "threshold_at_recall"]
