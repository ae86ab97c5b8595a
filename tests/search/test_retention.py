"""Which finished trials keep their weights: the rule, and the Tune callback on fake trials."""

from types import SimpleNamespace

import pandas as pd
from ray import tune
from ray.tune.experiment import Trial

from search.retention import WeightRetention, weights_to_keep
from trainables import ENDED_FILE, KEPT_FILE, RESUME_FILE


def _frame(rows):
    return pd.DataFrame([{"trial_id": t, "config/architecture": a, "config/strategy": s, "objective": o,
                          "kept_val_balanced_accuracy": 0.8, "kept_val_auc": 0.9} for t, a, s, o in rows])


def test_the_best_overall_and_the_best_of_each_group_are_kept():
    trials = _frame([("a", "cnn", "none", 0.9), ("b", "cnn", "none", 0.8), ("c", "cnn", "both", 0.5),
                     ("d", "cnn_bn", "none", 0.7), ("e", "cnn_bn", "none", 0.95)])
    assert weights_to_keep(trials, mode="max", keep_best=1) == {"e", "a", "c"}
    assert weights_to_keep(trials, mode="max", keep_best=3) == {"e", "a", "b", "c"}


def _trial(tmp_path, trial_id, objective, status=Trial.RUNNING):
    folder = tmp_path / trial_id
    folder.mkdir()
    for name in (KEPT_FILE, RESUME_FILE):
        (folder / name).write_bytes(b"x")
    return SimpleNamespace(trial_id=trial_id, status=status, checkpoint=tune.Checkpoint.from_directory(str(folder)),
                           config={"architecture": "cnn", "strategy": "none"},
                           last_result={"objective": objective, "kept_val_balanced_accuracy": 0.8,
                                        "kept_val_auc": 0.9, "training_iteration": 3})


def test_finished_trials_lose_their_resume_state_and_the_weights_outside_the_budget(tmp_path):
    callback = WeightRetention(mode="max", keep_best=1)
    a, b, c = (_trial(tmp_path, t, o) for t, o in (("a", 0.7), ("b", 0.9), ("c", 0.8)))
    for trial in (a, b, c):  # finishing, or stopped by a scheduler: Tune calls the same hook
        callback.on_trial_complete(iteration=0, trials=[a, b, c], trial=trial)
    files = {t: sorted(p.name for p in (tmp_path / t).iterdir()) for t in "abc"}
    # One group, budget 1: only the best keeps weights; each is marked ended before anything goes.
    assert files == {"a": [ENDED_FILE], "b": [ENDED_FILE, KEPT_FILE], "c": [ENDED_FILE]}


def test_a_resumed_search_counts_the_trials_that_finished_before(tmp_path):
    done = _trial(tmp_path, "done", 0.9, status=Trial.TERMINATED)
    (tmp_path / "done" / RESUME_FILE).unlink()
    new = _trial(tmp_path, "new", 0.5)
    WeightRetention(mode="max", keep_best=1).on_trial_complete(iteration=0, trials=[done, new], trial=new)
    assert (tmp_path / "done" / KEPT_FILE).exists() and not (tmp_path / "new" / KEPT_FILE).exists()


def test_a_new_checkpoint_deletes_the_one_it_supersedes_and_the_end_marks_the_last(tmp_path):
    trial = tmp_path / "trial"
    folders = [trial / f"checkpoint_{i:06d}" for i in range(3)]
    for folder in folders:
        folder.mkdir(parents=True)
        for name in (KEPT_FILE, RESUME_FILE):
            (folder / name).write_bytes(b"x")
    fake = SimpleNamespace(trial_id="t", status=Trial.RUNNING, checkpoint=None, config={"architecture": "cnn"},
                           last_result={"objective": 0.5, "training_iteration": 2})
    callback = WeightRetention(mode="max", keep_best=1)
    for folder in folders[:2]:  # as Tune calls it: before it records the new checkpoint as the trial's
        checkpoint = tune.Checkpoint.from_directory(str(folder))
        callback.on_checkpoint(iteration=0, trials=[fake], trial=fake, checkpoint=checkpoint)
        fake.checkpoint = checkpoint
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000001", "checkpoint_000002"]
    # checkpoint_000002: as a crash leaves one (say, the source of a restored trial's copy); the end removes it.
    fake.checkpoint = tune.Checkpoint.from_directory(str(folders[0].parent / "checkpoint_000001"))
    callback.on_trial_complete(iteration=0, trials=[fake], trial=fake)
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000001"]
    assert sorted(p.name for p in (trial / "checkpoint_000001").iterdir()) == [ENDED_FILE, KEPT_FILE]
