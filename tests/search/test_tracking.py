"""--mlflow against a real ``mlflow server`` on 127.0.0.1: every trial a run, the chosen model one more; the refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from search.results import SETTINGS_FILE, write_json_atomically
from search.run import build_parser, data_options, main, settings_from_args
from search.tracking import CHOSEN, INSTALL, ROLE, TrialRuns, log_chosen
from tests.search.processes import free_port
from tests.search.test_run import _search
from trainables import InputError

pytest.importorskip("mlflow")

FAST = ["--space", "smoke", "--image-size", "16", "--max-epochs", "2"]
START_TIMEOUT_S = 180  # the server imports MLflow and creates its tables: about 10 s idle, a minute on a busy 2-CPU machine


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a free loopback port, SQLite behind it, its artifacts served; killed at the end."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    # One worker, and no job executor (its consumers are seven more Pythons): this server only records runs.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts")]
    started = time.monotonic()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # its uvicorn worker shares its process group
    uri = f"http://127.0.0.1:{port}"
    try:
        while True:
            assert server.poll() is None, f"mlflow server exited with {server.returncode}"
            assert time.monotonic() - started < START_TIMEOUT_S, f"mlflow server did not answer in {START_TIMEOUT_S} s"
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        print(f"\nmlflow server answered after {time.monotonic() - started:.1f} s")
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_search_logs_every_trial_and_the_chosen_model(mlflow_server, ray_session, tmp_path):
    trials, folder = _search(tmp_path, "--mlflow", mlflow_server)  # the smoke space, 16 px, 2 epochs
    best = json.loads((folder / "best.json").read_text())

    client = _client(mlflow_server)
    experiment = client.get_experiment_by_name("exp")  # the experiment is the search's --name
    runs = client.search_runs([experiment.experiment_id])
    by_trial = {r.data.tags["trial_name"]: r for r in runs if "trial_name" in r.data.tags}
    assert len(by_trial) == len(trials) == 4 and len(runs) == 5
    for _, trial in trials.iterrows():
        (logged,) = [r for name, r in by_trial.items() if name.endswith(trial["trial_id"])]
        params = logged.data.params  # the trial's config
        assert logged.info.status == "FINISHED" and params["max_epochs"] == "2" and params["image_size"] == "16"
        assert (params["architecture"], params["strategy"]) == (trial["config/architecture"], trial["config/strategy"])
        history = client.get_metric_history(logged.info.run_id, "val_auc")
        assert [m.step for m in history] == list(range(1, trial["epochs"] + 1))  # one per epoch, the epoch as step
        # The kept state's metrics, as trials.csv has them from the last report.
        assert logged.data.metrics["kept_val_recall"] == pytest.approx(trial["kept_val_recall"])

    (chosen,) = [r for r in runs if r.data.tags.get(ROLE) == CHOSEN]
    assert chosen.info.run_name == CHOSEN and chosen.info.status == "FINISHED"
    metrics = chosen.data.metrics
    assert metrics["test/test_recall"] == pytest.approx(best["test"]["test_recall"])
    assert metrics["test_at_operating_threshold/test_recall"] == pytest.approx(
        best["test_at_operating_threshold"]["test_recall"])
    assert metrics["operating_threshold"] == pytest.approx(best["operating_point"]["threshold"])
    assert chosen.data.params["architecture"] == best["config"]["architecture"]
    assert chosen.data.tags["chosen_trial"] == best["deliverable"]["members"][0]["trial"]
    assert [a.path for a in client.list_artifacts(chosen.info.run_id)] == ["best.json"]


class _Trial(SimpleNamespace):
    """What TrialRuns reads of a Tune trial: its name (str) and config; hashed by identity, as Tune's."""

    __hash__ = object.__hash__

    def __str__(self) -> str:
        return self.name


def test_a_resumed_trial_logs_into_its_run_and_a_new_delivery_replaces_the_chosen_run(mlflow_server):
    def callback():
        logger = TrialRuns(tracking_uri=mlflow_server, experiment_name="resumed")
        logger.setup()
        return logger

    first = callback()
    trial = _Trial(name="train_fn_ab12c_00000", config={"architecture": "cnn"})
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, {"training_iteration": 1, "val_auc": 0.5, "trial_id": "ab12c_00000"})
    # A Ctrl-C: the run stays open. --resume restores the callback, without its runs, and the trial starts again.
    again = _Trial(name=trial.name, config=trial.config)
    second = callback()
    second.log_trial_start(again)
    second.log_trial_result(2, again, {"training_iteration": 2, "val_auc": 0.75})
    second.log_trial_end(again)
    client = _client(mlflow_server)
    experiment_id = client.get_experiment_by_name("resumed").experiment_id
    (logged,) = client.search_runs([experiment_id])
    assert logged.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(logged.info.run_id, "val_auc")] == [(1, 0.5), (2, 0.75)]

    best = {"config": {"architecture": "cnn"}, "operating_point": {"threshold": 0.3}, "test": {"test_recall": 0.9}}
    for _ in range(2):  # a --resume of a finished search delivers again
        log_chosen(mlflow_server, experiment="resumed", best=best, best_file="best.json")
    assert len(client.search_runs([experiment_id], f"tags.`{ROLE}` = '{CHOSEN}'")) == 1


def test_unreachable_tracking_server_is_one_line_and_exit_2(capsys, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["--storage-path", str(tmp_path), *FAST, "--mlflow", uri]) == 2
    err = capsys.readouterr().err
    assert f"--mlflow {uri!r}: no MLflow tracking server answers there" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mlflow_not_installed_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    assert main(["--storage-path", str(tmp_path), *FAST, "--mlflow", "http://127.0.0.1:5000"]) == 2
    err = capsys.readouterr().err
    assert INSTALL in err and len(err.strip().splitlines()) == 1


def test_resume_keeps_the_tracker_it_started_with(tmp_path):
    """Tune restores the experiment's callbacks as they were: another --mlflow on --resume would log nowhere."""
    flags = [*FAST, "--storage-path", str(tmp_path), "--name", "exp"]
    args = build_parser().parse_args(flags)
    started = settings_from_args(args)  # without --mlflow
    write_json_atomically(started.describe(data_options(args, started.space)), tmp_path / "exp" / SETTINGS_FILE)
    with pytest.raises(InputError, match="cannot resume 'exp' with a different mlflow: it was started with null"):
        settings_from_args(build_parser().parse_args([*flags, "--resume", "--mlflow", "http://127.0.0.1:1"]))
