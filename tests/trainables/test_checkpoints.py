import math

import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

from tests.conftest import tiny_dataset
from trainables import CheckpointPolicy, TrialConfig, asha_rungs, load_state, run_trial, save_state


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
    save_state(last_state, tmp_path)
    assert load_state(tmp_path)["early_stopping"]["best_epoch"] < last_epoch
