"""Crash and resume: a SIGKILLed driver loses nothing that had finished."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import load_epochs
from trainables import ENDED_FILE, HELD_OUT_FILE, KEPT_FILE, MANIFEST_FILE, RESUME_FILE, CheckpointPolicy

MAX_EPOCHS = 8
COMMAND = [sys.executable, "-m", "search.run", "--space", "smoke", "--name", "crash", "--image-size", "16",
           "--max-epochs", str(MAX_EPOCHS), "--max-concurrent-trials", "1",
           "--max-failures", "2",  # a trial whose worker dies is retried
           "--checkpoint-period", "0"]  # a checkpoint every epoch: resuming must continue from the last one


def _trial_results(experiment: Path) -> dict[str, list[dict]]:
    """Each trial folder's reported rows, from Tune's result.json."""
    rows = {}
    for folder in experiment.glob("train_fn_*"):
        lines = (folder / "result.json").read_text().splitlines() if (folder / "result.json").exists() else []
        rows[folder.name] = [json.loads(line) for line in lines if line.strip()]
    return rows


def _reported(row: dict) -> dict:
    """What the trial reported in a row of result.json, without Tune's bookkeeping (times, pid, ...)."""
    return {key: row[key] for key in ("epoch", "val_loss", "kept_epoch", "objective", "stopped_early")}


def _finished(rows: list[dict]) -> bool:
    return bool(rows) and (rows[-1]["stopped_early"] or rows[-1]["training_iteration"] >= MAX_EPOCHS)


def test_a_killed_worker_is_retried_and_a_sigkilled_driver_resumes_without_rerunning_finished_trials(tmp_path):
    """Two crashes in one experiment (each run of the command costs half a minute of the suite's time).

    First a trial's worker process dies mid-training: Tune retries the trial from its last checkpoint.
    Then, once a trial has finished, the driver itself is SIGKILLed: --resume continues the rest.
    """
    storage = ["--storage-path", str(tmp_path)]
    # result.json reaches the storage with Tune's snapshots (every 10 s or more by default): by the time it
    # showed a finished trial, CI once had all four finished. Snapshots at every step kill mid-experiment.
    driver = subprocess.Popen(COMMAND + storage, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0"})
    experiment, killed = tmp_path / "crash", None
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            results = _trial_results(experiment) if experiment.exists() else {}
            if killed is None:
                killed = next((name for name, rows in results.items() if 3 <= len(rows) < MAX_EPOCHS), None)
                if killed is not None:
                    os.kill(results[killed][-1]["pid"], signal.SIGKILL)  # the trial's worker dies mid-training
            elif any(_finished(r) for r in results.values()):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no trial finished within 240 s (worker killed: {killed})")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    time.sleep(1)
    before = _trial_results(experiment)
    done_before = {name for name, rows in before.items() if _finished(rows)}
    assert done_before and len(done_before) < 4  # killed mid-experiment
    # The trial whose worker died was restored from a checkpoint and continued, not restarted.
    assert any(r["iterations_since_restore"] < r["training_iteration"] for r in before[killed]), before[killed]
    # Rising epochs, none twice. result.json may hold only the rows since the restore (seen once in CI:
    # [4, ..., 8]), as the restored trial's record reached the storage; every row is in the checkpoints'
    # history, which load_epochs reads below.
    epochs = [r["epoch"] for r in before[killed]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == len(before[killed]) + epochs[0] - 1, epochs

    resumed = subprocess.run(COMMAND + storage + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    after = _trial_results(experiment)
    for name in done_before:
        # A trial that ended after Tune's last snapshot reports its final result once more, so that Tune
        # records it: result.json then holds that row twice (load_epochs keeps one). A rerun adds every epoch.
        again = after[name][len(before[name]):]
        assert after[name][:len(before[name])] == before[name] and len(again) <= 1, \
            f"{name} finished before the kill but was run again"
        assert [_reported(row) for row in again] in ([], [_reported(before[name][-1])])
    # A trial started after Tune's last snapshot is unknown to the restored
    # experiment and starts over in a new folder; the newest folder of each trial counts.
    latest = {}
    for name in sorted(after, key=lambda n: n.rsplit("_", 2)[-2:]):
        latest["_".join(name.split("_")[:4])] = after[name]
    assert len(latest) == 4 and all(_finished(rows) for rows in latest.values())
    for name, rows in latest.items():
        if len(rows) >= 2 and _reported(rows[-1]) == _reported(rows[-2]):
            # A trial that ended after Tune's last snapshot reports its final result once more (above); under
            # load that can be a trial that ended between the check for finished trials and the kill.
            rows = rows[:-1]
        epochs = [r["epoch"] for r in rows]
        # Rising epochs, none twice: continued, not restarted (a restart repeats them). Some rows may be
        # missing here: a trial that continues from a checkpoint newer than Tune's last snapshot has
        # the rows in between in its checkpoint's history, not in result.json (load_epochs below).
        assert epochs == sorted(set(epochs)), f"{name} restarted instead of continuing: {epochs}"
    # What Tune's record lacks, the checkpoints' history holds: every epoch of every trial, once.
    curves = load_epochs(experiment).groupby("trial_id")["training_iteration"].apply(list)
    assert len(curves) == 4
    for trial_id, epochs in curves.items():
        assert epochs == list(range(1, len(epochs) + 1)), f"{trial_id}: {epochs}"
    trials = pd.read_csv(experiment / "trials.csv")
    assert len(trials) == 4 and trials["trial_id"].is_unique and (trials["error"].fillna("") == "").all()
    assert dict(zip(trials["trial_id"], trials["epochs"])) == {t: len(e) for t, e in curves.items()}
    # Each trial's row is its final result, also for a trial that ended after Tune's last snapshot.
    final = {rows[-1]["trial_id"]: (rows[-1]["epoch"], rows[-1]["objective"]) for rows in latest.values()}
    assert {t: (e, o) for t, e, o in zip(trials["trial_id"], trials["epochs"], trials["objective"])} == final


def test_resume_refuses_another_space(tmp_path):
    experiment = tmp_path / "crash"
    experiment.mkdir()
    (experiment / "search.json").write_text(json.dumps({"space": {"name": "quick"}}))
    proc = subprocess.run(COMMAND + ["--storage-path", str(tmp_path), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot resume 'crash' with a different space" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_resume_needs_an_experiment(tmp_path):
    proc = subprocess.run(COMMAND + ["--storage-path", str(tmp_path), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr


@dataclass(frozen=True)
class _FailsOnceAtEpoch4(CheckpointPolicy):
    """A checkpoint every epoch; the first time a trial reaches epoch 4 (``marker`` absent), it raises."""

    marker: str = ""

    def due(self, epoch: int, *, last: bool, seconds_since_last: float) -> bool:
        if epoch == 4 and not Path(self.marker).exists():
            Path(self.marker).touch()
            raise RuntimeError("injected failure")
        return True


def test_a_trial_whose_named_checkpoint_was_deleted_continues_from_its_newest_complete_folder(
        ray_session, tmp_path, monkeypatch):
    """The state a driver crash can leave: Tune's snapshot names a folder the search deleted since
    (superseded by one the snapshot did not record), and the newest folder was cut short."""
    from search.spaces import Space
    from search.tuner import SearchSettings, build_tuner, restore_tuner
    from tests.conftest import tiny_dataset

    monkeypatch.setattr("search.tuner.CheckpointPolicy",
                        lambda **kw: _FailsOnceAtEpoch4(**kw, marker=str(tmp_path / "failed")))
    settings = SearchSettings(space=Space("named", {"seed": (0,)}, max_epochs=5), name="named",
                              storage_path=tmp_path, fixed={"patience": 50})
    inputs = {"datasets": {16: tiny_dataset()}, "imagenet_states": {}, "source_image_size": 16}
    (first,) = build_tuner(settings, **inputs).fit()
    assert first.error is not None and first.metrics["epoch"] == 3
    trial = Path(first.path)
    named = Path(first.checkpoint.path)
    assert named.name == "checkpoint_000002" and [p.name for p in trial.glob("checkpoint_*")] == [named.name]
    named.rename(trial / "checkpoint_000003")  # newer than the snapshot knew; the named one is gone
    cut = trial / "checkpoint_000004"
    shutil.copytree(trial / "checkpoint_000003", cut)
    (cut / RESUME_FILE).write_bytes(b"cut short")

    (result,) = restore_tuner(settings, retry_errored=True, **inputs).fit()
    assert result.error is None and result.metrics["epoch"] == result.metrics["training_iteration"] == 5
    rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    # Epoch 3 again (the folder's result, reported with a copy so that Tune records it), then 4 and 5.
    assert [r["epoch"] for r in rows] == [1, 2, 3, 3, 4, 5]
    assert [p.name for p in trial.glob("checkpoint_*")] == [Path(result.checkpoint.path).name]
    assert sorted(p.name for p in Path(result.checkpoint.path).iterdir()) == [ENDED_FILE, HELD_OUT_FILE, KEPT_FILE,
                                                                              MANIFEST_FILE]
