import math

import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

from tests.conftest import tiny_dataset
from trainables import (
    KEPT_FILE,
    RESUME_FILE,
    CheckpointPolicy,
    TrialConfig,
    asha_rungs,
    load_kept,
    load_resume,
    run_trial,
    save_checkpoint,
)


@pytest.mark.parametrize(("grace", "factor", "max_t"), [(1, 4, 20), (5, 3, 20), (1, 3, 20), (2, 2.5, 30), (1, 4, 1)])
def test_asha_rungs_are_the_epochs_where_ray_tunes_asha_decides(grace, factor, max_t):
    milestones = [milestone for milestone, _ in _Bracket(grace, max_t, factor, 0)._rungs]
    assert asha_rungs(grace, factor, max_t) == {math.ceil(m) for m in milestones}


def _checkpointed_epochs(cfg, policy):
    reports = []
    run_trial(cfg, tiny_dataset(), report=lambda metrics, state: reports.append((metrics["epoch"], state)),
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
    # The last checkpoint is the deliverable alone: nothing to resume, no optimiser state on disk.
    assert last_state["resume"] is None and load_resume(tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == [KEPT_FILE]


def test_a_checkpoint_before_the_last_epoch_holds_the_resume_state_beside_the_deliverable(tmp_path):
    cfg = TrialConfig.from_dict({"max_epochs": 3, "patience": 50})
    _, reports = _checkpointed_epochs(cfg, CheckpointPolicy(epochs=frozenset({1}), period_s=math.inf))
    save_checkpoint(tmp_path, **reports[0][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([KEPT_FILE, RESUME_FILE])
    resume = load_resume(tmp_path)
    assert resume["epoch"] == 1 and resume["kept"]["epoch"] == 1 and "optimizer" in resume["folds"][0]
    assert "weights" not in resume and "weights" not in resume["folds"][0]  # the kept weights are stored once, in the deliverable
