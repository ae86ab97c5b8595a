"""The CLI: bad input gets one line and exit 2; real Tune runs of the smoke space."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from search.run import build_parser, data_options, main, prepare_inputs, run, settings_from_args
from tests.conftest import tiny_dataset
from trainables import load_state

FAST = ["--image-size", "16", "--max-epochs", "2"]  # seconds per trial on a CPU


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--space", "nonsense"], "unknown space 'nonsense'"),
        (["--scheduler", "x"], "invalid choice: 'x'"),
        (["--search", "hyperopt"], "invalid choice: 'hyperopt'"),
        (["--metric", "val_recal"], "invalid choice: 'val_recal'"),
        (["--metric", "val_recall", "--mode", "min"], "would pick the worst trials"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
        (["--gpus-per-trial", "1.5"], "whole number"),
        (["--num-samples", "3"], "--num-samples goes with --search optuna"),
        (["--max-epochs", "0"], "--max-epochs must be >= 1"),
        (["--image-size", "40", "--space", "smoke"], "divisible by 16"),
        (["--data", "/no/such/folder", "--space", "smoke"], "does not exist"),
        (["--space", "full", "--weights-dir", "/nowhere"], "ImageNet weights for 'resnet18' not found at '/nowhere/resnet18-f37072fd.pth'"),
        (["--min-balanced-accuracy", "1.5"], "--min-balanced-accuracy must be a number >= 0.0 and <= 1.0; got 1.5"),
        (["--name", "taken"], "already exists; pass --resume to continue it or choose another --name"),
        (["--storage-path", "/proc/version/results"], "is a file"),
        (["--address", "127.0.0.1:1"], "cannot reach a Ray cluster at '127.0.0.1:1'"),
        (["--address", "headnode"], "is not host:port"),
        (["--resume"], "--resume needs the --name"),
        (["--retry-errored"], "--retry-errored goes with --resume"),
        (["--grace-period", "2"], "--grace-period goes with --scheduler asha"),
        (["--scheduler", "asha", "--grace-period", "30"], "--grace-period must be between 1 and the epoch budget"),
        (["--reduction-factor", "3"], "--reduction-factor goes with --scheduler asha"),
        (["--scheduler", "asha", "--reduction-factor", "1"], "--reduction-factor must be above 1"),
        (["--checkpoint-period", "-1"], "--checkpoint-period must be >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "trials.csv").write_text("")
    with pytest.raises(SystemExit) if "invalid choice" in message else contextlib.nullcontext():
        code = main(["--storage-path", str(tmp_path), *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_argparse_errors_exit_2_without_usage_block():
    proc = subprocess.run([sys.executable, "-m", "search.run", "--scheduler", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "usage" not in proc.stderr


def test_dry_run_prints_the_full_grid_and_writes_nothing(capsys, tmp_path):
    assert main(["--space", "full", "--dry-run", "--storage-path", str(tmp_path / "results")]) == 0
    assert not (tmp_path / "results").exists()
    out = capsys.readouterr().out
    assert out.startswith("1440 trials") and "architecture: cnn, cnn_bn, resnet18, resnet50, efficientnet_b0" in out


def _search(tmp_path, *flags):
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "exp", *FAST, *flags])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    return pd.read_csv(folder / "trials.csv"), folder


def test_grid_search_runs_every_smoke_trial(ray_session, tmp_path):
    trials, folder = _search(tmp_path)
    assert len(trials) == 4 and set(trials["ended_by"]) <= {"max_epochs", "patience"}
    assert set(trials["config/architecture"]) == {"cnn", "cnn_bn"}
    assert trials["kept_val_recall"].between(0, 1).all() and (trials["error"].fillna("") == "").all()
    best = json.loads((folder / "best.json").read_text())
    assert best["config"]["architecture"] in {"cnn", "cnn_bn"} and 0 <= best["test"]["test_recall"] <= 1
    recorded = json.loads((folder / "search.json").read_text())
    assert recorded["space"]["name"] == "smoke" and recorded["data"]["image_size"] == 16


def test_asha_scheduler(ray_session, tmp_path):
    # Rungs after epochs 1 and 3; epoch 2 is neither a rung nor a last epoch, so it writes no checkpoint.
    trials, folder = _search(tmp_path, "--scheduler", "asha", "--reduction-factor", "3", "--max-epochs", "4")
    assert len(trials) == 4 and trials["epochs"].between(1, 4).all()
    recorded = json.loads((folder / "search.json").read_text())
    assert recorded["asha"] == {"grace_period": 1, "reduction_factor": 3.0}
    for trial in trials.itertuples():  # stopped at a rung or not, the checkpoint is that of the last report
        state = load_state(max(Path(trial.path).glob("checkpoint_*")))
        assert (state["epoch"], state["early_stopping"]["best_epoch"]) == (trial.epochs, trial.kept_epoch)


def test_optuna_search(ray_session, tmp_path):
    trials, _ = _search(tmp_path, "--search", "optuna", "--num-samples", "3")
    assert len(trials) == 3 and set(trials["config/strategy"]) <= {"none", "both"}


def test_cli_end_to_end_writes_trials_csv(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "search.run", "--space", "smoke", "--storage-path", str(tmp_path), "--name", "cli",
         "--image-size", "16", "--max-epochs", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "cli" / "trials.csv")) == 4
    assert "Best configurations by val_recall" in proc.stdout and "test split, touched once" in proc.stdout



def test_disk_full_while_writing_results_is_one_line(monkeypatch, capsys, tmp_path):
    import errno

    import search.run as cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "trials.csv"))

    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({16: tiny_dataset()}, {}, 16))
    monkeypatch.setattr(cli, "run", full)
    assert main(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "full"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("continue with --resume") and "No space left on device" in err and len(err.splitlines()) == 1
