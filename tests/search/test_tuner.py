"""Tuner set-up; regression tests named after what they guard against."""

from pathlib import Path

import pandas as pd
from ray.tune import Callback

from search import SearchSettings, build_tuner
from search.spaces import Space
from tests.conftest import tiny_dataset


class _CheckpointWatcher(Callback):
    """Counts the checkpoints Tune is handed."""

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.seen.append(checkpoint.path)


def test_reused_workers_leak_no_state_between_trials(ray_session, tmp_path):
    """Three trials on one reused worker, the first and last with the same config, must report the same."""
    space = Space("reuse", {"seed": (0, 1, 0)}, max_epochs=3)
    settings = SearchSettings(space=space, name="reuse", storage_path=tmp_path, max_concurrent_trials=1,
                              fixed={"architecture": "cnn_bn", "strategy": "both", "augment": True, "patience": 3})
    results = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16).fit()
    assert not results.errors
    curves = [r.metrics_dataframe.sort_values("training_iteration") for r in results]
    by_seed = {}
    for r, curve in zip(results, curves, strict=True):
        by_seed.setdefault(r.config["seed"], []).append(curve)
    assert len({int(c["pid"].iloc[0]) for c in curves}) == 1  # one worker ran all three
    first, again = by_seed[0]
    pd.testing.assert_series_equal(first["val_loss"].reset_index(drop=True), again["val_loss"].reset_index(drop=True))
    assert not first["val_loss"].reset_index(drop=True).equals(by_seed[1][0]["val_loss"].reset_index(drop=True))


def test_a_trial_that_raises_fails_alone_with_its_error_in_the_table(ray_session, tmp_path):
    """The 32-pixel trial finds no data of its size and raises; the 16-pixel one finishes."""
    from search import trials_frame

    space = Space("one-fails", {"image_size": (16, 32)}, max_epochs=2)
    settings = SearchSettings(space=space, name="fails", storage_path=tmp_path)
    results = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16).fit()
    frame = trials_frame(results, max_epochs=2).set_index("config/image_size")
    assert frame.loc[32, "ended_by"] == "error" and "KeyError" in frame.loc[32, "error"]
    assert frame.loc[16, "ended_by"] == "max_epochs" and frame.loc[16, "error"] == ""


def test_superseded_checkpoints_are_deleted_while_trials_run(ray_session, tmp_path):
    """Tune keeps every checkpoint (so none forces a snapshot); the search deletes all but a trial's last."""
    from trainables import ENDED_FILE, HELD_OUT_FILE, KEPT_FILE, MANIFEST_FILE

    space = Space("several", {"seed": (0,)}, max_epochs=4)
    settings = SearchSettings(space=space, name="several", storage_path=tmp_path, checkpoint_period_s=0,
                              fixed={"patience": 50})
    seen = []
    results = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16,
                          callbacks=[_CheckpointWatcher(seen)]).fit()
    assert not results.errors and len(seen) == 4  # a checkpoint every epoch
    result = results[0]
    assert [p.name for p in Path(result.path).glob("checkpoint_*")] == [Path(result.checkpoint.path).name]
    assert sorted(p.name for p in Path(result.checkpoint.path).iterdir()) == [ENDED_FILE, HELD_OUT_FILE, KEPT_FILE,
                                                                              MANIFEST_FILE]
    assert result.metrics["epoch"] == result.metrics["training_iteration"] == 4


def test_finished_trials_keep_their_averages_but_not_the_windows_behind_them(ray_session, tmp_path):
    """ForgetFinishedWindows: driver memory per finished trial, without losing what get_best_result reads."""
    from ray import tune

    space = Space("windows", {"seed": (0, 1)}, max_epochs=2)
    settings = SearchSettings(space=space, name="windows", storage_path=tmp_path, fixed={"patience": 50})
    results = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16).fit()
    best = results.get_best_result(metric="objective", mode="max", scope="last-5-avg")
    assert best.metrics["objective"] == max(r.metrics["objective"] for r in results)
    for trial in tune.ExperimentAnalysis(str(tmp_path / "windows")).trials:  # as the last snapshot saved them
        assert trial.metric_n_steps == {} and trial.metric_analysis["objective"]["last"] == trial.last_result["objective"]
