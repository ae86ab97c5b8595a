"""Ctrl-C: exit 130, nothing that looks final, and a printed command that finishes the experiment."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from search.interrupt import resume_command
from search.run import build_parser
from tests.conftest import tiny_dataset

MAX_EPOCHS = 6
# No --name: the printed command must carry the generated one.
COMMAND = [sys.executable, "-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs",
           str(MAX_EPOCHS), "--max-concurrent-trials", "1", "--checkpoint-period", "0"]


def _epochs_reported(storage: Path) -> int:
    """Epochs checkpointed so far (every epoch here) by every trial of the one experiment under ``storage``.

    Read from the checkpoint folders' manifests, which the trials write as they go: ``result.json``
    reaches the storage only with Tune's snapshots (every 10 s or more), too late to catch a trial
    mid-training on a fast machine.
    """
    return sum(max((_manifest_epoch(m) for m in trial.glob("checkpoint_*/manifest.json")), default=0)
               for trial in storage.glob("*/train_fn_*"))


def _manifest_epoch(manifest: Path) -> int:
    try:
        return int(json.loads(manifest.read_text())["result"]["epoch"])
    except (OSError, ValueError, KeyError):  # being written, or deleted as superseded
        return 0


def _finished(result_json: Path) -> bool:
    """Whether a trial's reports end with early stopping or the epoch budget."""
    rows = [json.loads(line) for line in result_json.read_text().splitlines() if line.strip()]
    return bool(rows) and (rows[-1]["stopped_early"] or rows[-1]["training_iteration"] >= MAX_EPOCHS)


def _stop_mid_training(command: list[str], stop: signal.Signals, *, storage: Path, tmp_path: Path) -> tuple[int, str]:
    """Run ``command`` until three more epochs are checkpointed, then send ``stop``; (exit status, stderr)."""
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        driver = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        try:
            target = _epochs_reported(storage) + 3  # mid-training: a trial is in its third epoch since the start
            deadline = time.time() + 180
            while _epochs_reported(storage) < target:
                assert time.time() < deadline and driver.poll() is None, "training did not start"
                time.sleep(0.1)
            driver.send_signal(stop)
            driver.wait(timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    return driver.returncode, (tmp_path / "err").read_text()


def _printed_command(stderr: str, *, experiment: Path, said: str) -> list[str]:
    """The command that the last line of a stopped run prints, checked against what the folder holds."""
    assert "SIGTERM received" not in stderr and "*** " not in stderr  # no stack dump of Ray's handler
    assert "Tuner.restore(" not in stderr
    assert not (experiment / "trials.csv").exists() and not (experiment / "best.json").exists()
    last = stderr.strip().splitlines()[-1]
    finished = sum(_finished(f) for f in experiment.glob("train_fn_*/result.json"))
    prefix = (f"python -m search.run: {said} with {4 - finished} of 4 trials unfinished; the experiment is saved "
              f"in {str(experiment)!r}; continue it with: ")
    assert last.startswith(prefix), last
    return shlex.split(last.removeprefix(prefix))


def test_a_stop_mid_training_writes_nothing_final_and_the_printed_command_finishes(tmp_path):
    """Ctrl-C, then SIGTERM (as batch schedulers, Kubernetes and timeout send it) in the resumed run.

    Each saves the experiment and prints the command that goes on; the last printed command finishes it.
    """
    storage = tmp_path / "results"
    status, stderr = _stop_mid_training(COMMAND + ["--storage-path", str(storage)], signal.SIGINT, storage=storage,
                                        tmp_path=tmp_path)
    assert status == 130, stderr[-3000:]
    (experiment,) = storage.iterdir()
    command = _printed_command(stderr, experiment=experiment, said="interrupted")
    assert command == [sys.executable, "-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs",
                       str(MAX_EPOCHS), "--storage-path", str(storage), "--name", experiment.name,
                       "--max-concurrent-trials", "1", "--checkpoint-period", "0.0", "--resume"]

    status, stderr = _stop_mid_training(command, signal.SIGTERM, storage=storage, tmp_path=tmp_path)
    assert status == 143, stderr[-3000:]
    assert _printed_command(stderr, experiment=experiment, said="terminated (SIGTERM)") == command

    elsewhere = tmp_path / "elsewhere"  # absolute paths: the command works from any folder
    elsewhere.mkdir()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = pd.read_csv(experiment / "trials.csv")
    assert len(trials) == 4 and set(trials["ended_by"]) <= {"max_epochs", "patience"}
    assert json.loads((experiment / "best.json").read_text())["config"]["architecture"] in {"cnn", "cnn_bn"}


def test_resume_command_repeats_the_flags_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    args = parser.parse_args(["--space", "smoke", "--data", "d.npz", "--scheduler", "asha", "--yes"])
    command = resume_command(parser, args, name="exp", storage_path=tmp_path / "results")
    assert shlex.split(command) == [
        sys.executable, "-m", "search.run", "--space", "smoke", "--data", str(tmp_path / "d.npz"),
        "--scheduler", "asha", "--storage-path", str(tmp_path / "results"), "--name", "exp", "--resume", "--yes"]


NOTHING_SAVED = "python -m search.run: interrupted before any trial started; nothing was saved"
# Sends SIGINT to the command itself from inside ray.init, while Ray builds the driver's core worker
# (CoreWorker.__cinit__ starts Python's GC thread): a KeyboardInterrupt raised there used to leave a
# half-built core worker, and the process died of SIGSEGV at exit after printing the right line.
SIGINT_INSIDE_RAY_INIT = """
import os, signal, sys
from trainables.ray_compat import gc_thread_class
thread = gc_thread_class()
start = thread.__init__
def sigint_then_start(self, *args, **kwargs):
    thread.__init__ = start
    print("test: SIGINT inside ray.init", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    start(self, *args, **kwargs)
thread.__init__ = sigint_then_start
from search.run import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_while_starting_says_nothing_was_saved(tmp_path):
    """Regression: a Ctrl-C at start-up advised --resume, which then found nothing to resume."""
    driver = subprocess.Popen(COMMAND + ["--storage-path", str(tmp_path), "--name", "early"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # The data summary comes just before Ray starts (seconds), and Ray before search.json.
    assert driver.stdout.readline().startswith("PneumoniaMNIST subsample (embedded")
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == NOTHING_SAVED
    assert "resume" not in stderr and not (tmp_path / "early").exists()


def test_sigint_inside_ray_init_waits_for_ray_and_exits_130(tmp_path):
    """Regression: a SIGINT while ray.init built the core worker ended in SIGSEGV (status -11) at exit."""
    command = [sys.executable, "-c", SIGINT_INSIDE_RAY_INIT, *COMMAND[3:], "--storage-path", str(tmp_path),
               "--name", "early"]
    driver = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert "test: SIGINT inside ray.init" in driver.stderr, driver.stderr[-3000:]  # the hook still fires in this Ray
    assert driver.returncode == 130, driver.stderr[-3000:]
    lines = driver.stderr.strip().splitlines()
    assert "python -m search.run: stopping once Ray has started (Ctrl-C again to stop at once)" in lines
    assert lines[-1] == NOTHING_SAVED and not (tmp_path / "early").exists()


def test_sigint_after_search_json_before_tune_saved_anything_leaves_no_folder(ray_session, tmp_path, monkeypatch,
                                                                              capsys):
    """search.json alone would make the same command refuse the name, and --resume refuse the folder."""
    import search.run as cli
    import search.tuner

    def interrupted(*args, **kwargs):
        assert (tmp_path / "early" / "search.json").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({16: tiny_dataset()}, {}, 16))
    monkeypatch.setattr(search.tuner, "build_tuner", interrupted)
    assert cli.main(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "early"]) == 130
    assert capsys.readouterr().err == NOTHING_SAVED + "\n"
    assert not (tmp_path / "early").exists()


def _sigint_to_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # handled before os.kill returns to Python code


def _sigint_caught_by_a_library() -> None:
    """A KeyboardInterrupt that some code catches and drops: it used to be lost, and the search ran to exit 0."""
    try:
        _sigint_to_self()
        time.sleep(5)
    except KeyboardInterrupt:
        pass


@pytest.mark.parametrize("where", ["tuner built", "caught by a library", "tune's handler installed"])
def test_sigint_before_the_first_trial_leaves_nothing(where, ray_session, tmp_path, monkeypatch, capsys):
    """A real SIGINT (in this process, under the command's handler) where Tune has written files but no trial.

    tuner built: tuner.pkl written, Tune's handler not yet installed; Tune's handler installed: its
    state saved with no trial. Both used to print the --resume line and keep the folder.
    """
    import ray.tune.tune

    import search.run as cli
    import search.tuner

    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({16: tiny_dataset()}, {}, 16))
    if where == "tune's handler installed":
        setup = ray.tune.tune._setup_signal_catching
        monkeypatch.setattr(ray.tune.tune, "_setup_signal_catching", lambda: (setup(), _sigint_to_self())[0])
    else:
        build = search.tuner.build_tuner
        then = _sigint_to_self if where == "tuner built" else _sigint_caught_by_a_library
        monkeypatch.setattr(search.tuner, "build_tuner", lambda *a, **k: (build(*a, **k), then())[0])
    previous = signal.getsignal(signal.SIGINT)
    assert cli.main(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "early", "--max-epochs", "1",
                     "--max-concurrent-trials", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == NOTHING_SAVED
    assert not (tmp_path / "early").exists()
    assert signal.getsignal(signal.SIGINT) is previous


def test_sigint_after_the_last_trial_ended_still_exits_130(ray_session, tmp_path, monkeypatch, capsys):
    """Tune's handler stays in place while Tune saves its state and ends the callbacks, after its loop: a SIGINT
    there set Tune's stop flag too late, fit returned as if nothing happened, and the command exited 0."""
    import search.progress
    import search.run as cli

    space = tmp_path / "one.json"  # one trial of one epoch
    space.write_text(json.dumps({"dimensions": {"architecture": ["cnn"], "strategy": ["none"]}, "max_epochs": 1}))
    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({16: tiny_dataset()}, {}, 16))
    monkeypatch.setattr(search.progress.LiveProgress, "on_experiment_end", lambda self, trials, **info: _sigint_to_self())
    assert cli.main(["--space", str(space), "--storage-path", str(tmp_path), "--name", "late"]) == 130
    experiment = tmp_path / "late"
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"python -m search.run: interrupted with 0 of 1 trials unfinished; the experiment is saved "
                           f"in {str(experiment)!r}; continue it with: "), last
    assert not (experiment / "trials.csv").exists() and not (experiment / "best.json").exists()


def test_the_time_budget_stops_the_search_as_ctrl_c_does_and_resume_finishes_it(ray_session, tmp_path, monkeypatch,
                                                                                 capsys):
    import search.run as cli

    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({16: tiny_dataset()}, {}, 16))
    flags = ["--space", "smoke", "--storage-path", str(tmp_path), "--name", "budget", "--max-concurrent-trials", "1",
             "--max-epochs", "40"]
    assert cli.main(flags + ["--time-budget", "4s"]) == 124
    last = capsys.readouterr().err.strip().splitlines()[-1]
    experiment = tmp_path / "budget"
    assert last.startswith("python -m search.run: time budget of 4 s reached with "), last
    assert f"the experiment is saved in {str(experiment)!r}; continue it with: " in last and "--resume" in last
    assert not (experiment / "trials.csv").exists()
    assert cli.main(flags + ["--resume"]) == 0  # saved as on Ctrl-C, so the trials continue
    assert len(pd.read_csv(experiment / "trials.csv")) == 4 and (experiment / "best.json").exists()


@pytest.mark.parametrize("text, message", [("0s", "above 0"), ("soon", "like 30s, 90m or 2h"), ("-2h", "above 0")])
def test_a_bad_time_budget_is_one_line(text, message, capsys):
    from search.run import main

    with pytest.raises(SystemExit) as exit_:
        main([f"--time-budget={text}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
