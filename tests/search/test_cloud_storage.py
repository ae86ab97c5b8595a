"""``--storage-path s3://...``: an experiment's whole life on a bucket, against moto's S3 server on 127.0.0.1.

One end-to-end test (the suite's time is short) runs a search on the bucket, stops it with SIGINT, resumes
it with the command it printed, reports on it and loads its model from there; cheap tests cover
trainables.storage and the one-line refusals.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs
import pytest

from search.interrupt import resume_command
from search.run import build_parser, main
from tests.search.processes import free_port
from trainables import InputError
from trainables.storage import Storage, is_remote, local_folder, locate, user_folder

BUCKET = "experiments"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on 127.0.0.1 (a free port) with one bucket, and fake AWS credentials in the environment.

    Yields the query that points pyarrow at it: ``?endpoint_override=127.0.0.1:PORT&scheme=http``.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        env.delenv("AWS_PROFILE", raising=False)
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket=BUCKET)
        try:
            yield f"?endpoint_override=127.0.0.1:{port}&scheme=http"
        finally:
            server.stop()


def _uri(s3: str, path: str) -> str:
    return f"s3://{BUCKET}/{path}{s3}"


def _epochs_checkpointed(experiment: Storage) -> int:
    """Epochs checkpointed so far by the experiment's trials, from their manifests on the bucket."""
    selector = pyarrow.fs.FileSelector(experiment.path, recursive=True, allow_not_found=True)
    found = 0
    for info in experiment.filesystem.get_file_info(selector):
        if info.base_name == "manifest.json":
            try:
                found = max(found, int(json.loads(Storage(experiment.filesystem, info.path, "").read_text())
                                       ["result"]["epoch"]))
            except (OSError, ValueError, KeyError):  # being written, or deleted as superseded
                pass
    return found


def test_a_search_on_a_bucket_is_stopped_resumed_reported_and_its_model_loaded_from_there(s3, ray_session, tmp_path,
                                                                                          monkeypatch, capsys):
    storage = _uri(s3, "results")
    experiment = locate(_uri(s3, "results/exp"))
    command = [sys.executable, "-m", "search.run", "--space", "smoke", "--image-size", "16", "--max-epochs", "2",
               "--max-concurrent-trials", "2", "--checkpoint-period", "0", "--storage-path", storage, "--name", "exp"]
    with open(tmp_path / "err", "w") as err:
        driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path,
                                  start_new_session=True)
        try:
            deadline = time.time() + 180
            while _epochs_checkpointed(experiment) < 1:  # mid-training: a trial has checkpointed its first epoch
                assert time.time() < deadline and driver.poll() is None, "training did not start"
                time.sleep(0.2)
            driver.send_signal(signal.SIGINT)
            driver.wait(timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    stderr = (tmp_path / "err").read_text()
    assert driver.returncode == 130, stderr[-3000:]
    assert not (experiment / "trials.csv").exists() and (experiment / "search.json").is_file()
    last = stderr.strip().splitlines()[-1]
    assert f"; the experiment is saved in {str(experiment)!r}; continue it with: " in last, last
    resume = shlex.split(last.split("; continue it with: ", 1)[1])
    assert resume[resume.index("--storage-path") + 1] == storage  # the URI as given, not made a local path
    assert resume[-1] == "--resume"

    # The resume and the report run in this process (the session's Ray): each command's start costs seconds.
    from analysis.report import main as report_main
    from search.run import main

    monkeypatch.chdir(tmp_path)
    assert resume[:3] == [sys.executable, "-m", "search.run"]
    assert main(resume[3:]) == 0, capsys.readouterr().err[-3000:]
    with local_folder(experiment) as local:  # what the bucket holds, downloaded to look at
        trials = pd.read_csv(local / "trials.csv")
        best = json.loads((local / "best.json").read_text())
        assert {"search.json", "data.json", "comparisons.json"} <= {p.name for p in local.iterdir()}
        checkpoints = list(local.glob("train_fn_*/checkpoint_*"))
    assert len(trials) == 4 and set(trials["ended_by"]) <= {"max_epochs", "patience"}
    assert len(checkpoints) == 4 and not any((c / "resume.pt").exists() for c in checkpoints)  # retention ran there
    assert best["config"]["architecture"] in {"cnn", "cnn_bn"}

    capsys.readouterr()
    assert report_main([str(experiment), "--bootstrap", "50"]) == 0
    assert capsys.readouterr().out.startswith(f"report written to {tmp_path / 'report-exp' / 'report.md'}")
    markdown = (tmp_path / "report-exp" / "report.md").read_text()
    assert markdown.startswith("# Search report: exp") and "What could not be shown" not in markdown

    from trainables import Classifier

    from search.export import export

    classifier = Classifier.load(str(experiment))  # the experiment's best.json and checkpoint, read on the bucket
    assert classifier.threshold == pytest.approx(best["operating_point"]["threshold"])
    images = np.zeros((2, 1, 16, 16), dtype=np.uint8)
    exported = export(str(experiment), _uri(s3, "models/exp"), command="test", onnx=False)  # and a model folder there
    assert {"model.json", "weights.safetensors", "README.md"} <= set(exported.names())
    again = Classifier.load(str(exported))
    assert again.threshold == classifier.threshold
    assert np.allclose(again.predict_proba(images), classifier.predict_proba(images))


def test_storage_reads_and_writes_a_bucket_and_a_local_folder_alike(s3, tmp_path):
    for root in (locate(_uri(s3, "unit")), locate(tmp_path / "unit")):
        assert not root.exists() and root.names() == []
        (root / "a" / "b.txt").write_text("one")
        (root / "a" / "b.txt").write_text("two")  # replaced whole
        assert (root / "a" / "b.txt").read_text() == "two" and (root / "a" / "b.txt").is_file()
        assert root.is_dir() and root.names() == ["a"] and (root / "a").is_dir()
        with pytest.raises(FileNotFoundError):
            (root / "missing.json").read_text()
        root.check_writable()
        assert root.names() == ["a"]  # the probe is gone
        with local_folder(root) as local:
            assert (local / "a" / "b.txt").read_text() == "two"
        root.delete()
        assert not root.exists()
        root.delete()  # nothing there: nothing to do
    bucket = locate(_uri(s3, "unit/x"))
    assert bucket.path == f"{BUCKET}/unit/x" and bucket.name == "x" and not bucket.local
    assert str(bucket / "y/z") == _uri(s3, "unit/x/y/z")  # the query stays at the end
    assert locate(f"file://{tmp_path}/r").path == str(tmp_path / "r") and locate(tmp_path).local
    assert is_remote("gs://b/x") and not is_remote("file:///x") and not is_remote("results")
    assert isinstance(user_folder("results"), Path) and isinstance(user_folder(str(bucket)), Storage)
    with pytest.raises(InputError, match="Unrecognized filesystem type"):
        user_folder("nosuch://b/x")


def test_the_resume_command_repeats_a_bucket_uri_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    uri = "s3://bucket/results?endpoint_override=127.0.0.1:9000&scheme=http"
    args = parser.parse_args(["--space", "smoke", "--storage-path", uri])
    words = shlex.split(resume_command(parser, args, name="exp", storage_path=uri))
    assert words[words.index("--storage-path") + 1] == uri


@pytest.mark.parametrize("path, reason", [
    ("missing-bucket/x", "cannot be reached: bucket 'missing-bucket' does not exist"),
    ("", "names no bucket; e.g. s3://my-bucket/results"),
], ids=["missing-bucket", "no-bucket"])
def test_a_bucket_that_cannot_be_used_is_one_line_before_anything_starts(path, reason, s3, capsys):
    uri = f"s3://{path}{s3}"
    assert main(["--space", "smoke", "--storage-path", uri, "--dry-run"]) == 2
    assert capsys.readouterr().err == f"python -m search.run: error: --storage-path {uri!r} {reason}\n"


def test_refused_credentials_are_one_line(s3, capsys, monkeypatch):
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys from now on
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
    uri = _uri(s3, "refused")  # a URI of its own: filesystems are made once per URI
    assert main(["--space", "smoke", "--storage-path", uri, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m search.run: error: --storage-path {uri!r} cannot be reached: ") and \
        err.count("\n") == 1, err


def test_a_cluster_run_on_a_bucket_prints_no_shared_folder_note(s3, monkeypatch, capsys):
    import search.run as cli
    import search.settings

    def stop(settings, args):
        raise InputError("stopped after the note")

    monkeypatch.setattr(search.settings, "check_address", lambda address: None)
    monkeypatch.setattr(cli, "prepare_inputs", stop)
    assert main(["--storage-path", _uri(s3, "cluster"), "--address", "10.0.0.5:6379"]) == 2
    assert capsys.readouterr().err == "python -m search.run: error: stopped after the note\n"
