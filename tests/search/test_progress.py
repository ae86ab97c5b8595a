"""Live progress: the line's arithmetic, and what a real search prints with and without --verbose."""

import io
import math

import pytest

from search import SearchSettings, build_tuner
from search.progress import (
    Best,
    Counts,
    LiveProgress,
    count_trials,
    describe_best,
    eta_seconds,
    format_duration,
    format_rate,
    progress_line,
)
from search.spaces import Space
from tests.conftest import tiny_dataset


def test_trials_the_searcher_has_not_created_yet_count_as_pending():
    counts = count_trials(["TERMINATED", "RUNNING", "PENDING", "ERROR", "PAUSED"], total=8)
    assert (counts.done, counts.running, counts.pending, counts.errored) == (1, 1, 5, 1)
    assert count_trials(["RUNNING"], total=None).total == 1


def test_eta_expects_the_finished_trials_average_and_counts_what_running_ones_have_left():
    counts = Counts(done=2, running=2, pending=3)
    # finished trials took 4 and 6 epochs: 5 expected; running at 1 and 7 epochs: 4 and 0 left; pending 3 x 5
    assert eta_seconds(counts, running_epochs=[1, 7], finished_epochs=[4, 6], max_epochs=12, epochs_per_s=2.0) == 9.5
    # nothing finished yet: the epoch budget is the expectation
    assert eta_seconds(Counts(pending=2), running_epochs=[], finished_epochs=[], max_epochs=12, epochs_per_s=4) == 6
    assert eta_seconds(counts, running_epochs=[], finished_epochs=[], max_epochs=12, epochs_per_s=0) is None


@pytest.mark.parametrize("seconds, text", [(None, "?"), (math.inf, "?"), (0, "0:00"), (65.4, "1:05"), (3725, "1:02:05")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_a_best_that_fails_the_guard_is_said_in_words_not_shown_as_minus_one():
    assert describe_best(Best(-0.99, -1.0, {"architecture": "cnn"})) == "best: no trial passes the guard yet (cnn)"
    assert describe_best(Best(0.94, 0.94, {"architecture": "cnn_bn", "strategy": "both"})) == "best 0.9400 (cnn_bn, both)"
    assert describe_best(None) == "best -"


def test_progress_line_is_one_line_with_every_part():
    line = progress_line(elapsed_s=65, counts=Counts(3, 2, 3, 0), epochs_per_s=1.84,
                         best=Best(0.94, 0.94, {"strategy": "both"}), eta_s=52)
    assert line == ("[   1:05] trials 3 done, 2 running, 3 pending, 0 errored | 1.8 epochs/s | "
                    "best 0.9400 (both) | ETA 0:52")


@pytest.mark.parametrize("per_s, text", [(1.84, "1.8 epochs/s"), (0.05, "3.0 epochs/min"), (1 / 7200, "0.5 epochs/h"), (0.0, "no epoch yet")])
def test_a_slow_rate_is_shown_per_minute_or_hour_not_as_zero(per_s, text):
    assert format_rate(per_s) == text


def test_trials_stopped_by_ctrl_c_are_not_counted_as_done(monkeypatch):
    """Tune marks the trials it stops on Ctrl-C TERMINATED; only trials that ended (or were restored ended) are done."""
    from types import SimpleNamespace

    out = io.StringIO()
    progress = LiveProgress(varied_keys=[], max_epochs=4, mode="max", interval_s=1e9, stream=out)
    progress.setup(total_num_samples=3)
    restored, finished, stopped = (SimpleNamespace(trial_id=t, status="TERMINATED", config={}) for t in "abc")
    progress.on_step_begin(0, [restored])
    progress.on_trial_result(0, [], finished, {"training_iteration": 1, "objective": 0.5})
    progress.on_trial_complete(0, [], finished)
    progress.on_experiment_end([restored, finished, stopped])
    assert "trials 2 done, 0 running, 1 pending" in out.getvalue()


def test_live_progress_in_a_real_search(ray_session, tmp_path):
    """Lines every interval and one at the end, counting every trial; the best is that of the search metric."""
    stream = io.StringIO()
    progress = LiveProgress(varied_keys=["seed"], max_epochs=3, interval_s=0.5, bar=False, stream=stream)
    space = Space("progress", {"seed": (0, 1, 2)}, max_epochs=3)
    settings = SearchSettings(space=space, name="progress", storage_path=tmp_path,
                              fixed={"architecture": "cnn", "min_balanced_accuracy": 0})
    results = build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16,
                          callbacks=[progress]).fit()
    lines = stream.getvalue().splitlines()
    assert lines and lines[-1].split("] ")[1].startswith("trials 3 done, 0 running, 0 pending, 0 errored")
    best = max(results, key=lambda r: r.metrics["tiebroken_objective"])
    assert f"best {best.metrics['objective']:.4f} ({best.config['seed']})" in lines[-1]
    assert not list(tmp_path.glob("progress/*/events.out.tfevents*"))  # TensorBoard files are opt-in
    assert list(tmp_path.glob("progress/*/progress.csv")) and list(tmp_path.glob("progress/*/result.json"))


def test_cli_prints_a_line_per_interval_and_the_leaderboard(smoke_command):
    assert smoke_command.returncode == 0, smoke_command.stderr[-2000:]
    out = smoke_command.stdout.splitlines()
    progress = [line for line in out if " trials " in line and "ETA" in line]
    assert not [line for line in out if "Trial status" in line or "started with configuration" in line]
    assert 1 <= len(progress) <= smoke_command.wall_s / 15 + 2
    board = out.index(next(line for line in out if line.startswith("Best configurations")))
    # before the leaderboard: the data summary, the progress lines, the trial count and how trials ended
    assert len(out[:board]) <= len(progress) + 6, out[:board]
    assert not [line for line in smoke_command.stderr.splitlines() if " INFO " in line], smoke_command.stderr


def test_verbose_brings_tune_tables_back(ray_session, tmp_path, capfd, monkeypatch):
    import search.tuner

    monkeypatch.setattr(search.tuner, "_USER_NEW_OUTPUT", None)  # as if the user had not set RAY_AIR_NEW_OUTPUT
    settings = SearchSettings(space=Space("loud", {"seed": (0,)}, max_epochs=1), name="loud", storage_path=tmp_path,
                              fixed={"architecture": "cnn"}, verbose=True)
    build_tuner(settings, datasets={16: tiny_dataset()}, imagenet_states={}, source_image_size=16).fit()
    out = capfd.readouterr().out
    assert "Trial status" in out and "started with configuration" in out


def _fake_trial(trial_id, status="RUNNING", **config):
    from types import SimpleNamespace

    return SimpleNamespace(trial_id=trial_id, status=status, config=config)


def test_the_best_is_that_of_each_trials_latest_result_not_a_value_no_trial_holds_any_more():
    progress = LiveProgress(varied_keys=["strategy"], max_epochs=5, bar=False, stream=io.StringIO())
    a, b = _fake_trial("a", strategy="none"), _fake_trial("b", strategy="both")
    progress.setup(total_num_samples=2)
    for trial, value in ((a, 0.9), (b, 0.85), (a, 0.8)):  # a's kept state changed: its objective fell
        progress.on_trial_result(0, [a, b], trial, {"tiebroken_objective": value, "objective": value,
                                                    "training_iteration": 1})
    assert progress.best.config == {"strategy": "both"} and progress.best.objective == 0.85


def test_on_a_terminal_a_tqdm_bar_counts_finished_trials():
    stream = io.StringIO()
    progress = LiveProgress(varied_keys=["strategy"], max_epochs=2, bar=True, stream=stream)
    trials = [_fake_trial("a", "TERMINATED", strategy="none"), _fake_trial("b", "RUNNING", strategy="both")]
    progress.setup(total_num_samples=2)
    progress.on_trial_result(0, trials, trials[0], {"tiebroken_objective": 0.7, "objective": 0.7,
                                                    "training_iteration": 2})
    progress.on_trial_complete(0, trials, trials[0])
    progress.on_experiment_end(trials)
    out = stream.getvalue()
    assert "1/2" in out and "best 0.7000 (none)" in out and "ETA" not in out
