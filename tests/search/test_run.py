"""The CLI: bad input gets one line and exit 2; real Tune runs of the smoke space."""

import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.results import SETTINGS_FILE, write_json_atomically
from search.run import (
    build_parser,
    data_options,
    main,
    prepare_inputs,
    run,
    settings_from_args,
    with_folds_decided,
)
from tests.conftest import tiny_dataset
from trainables import HELD_OUT_FILE, KEPT_FILE, RESUME_FILE, InputError, load_kept

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
        (["--keep-weights", "0"], "--keep-weights must be >= 1 (the chosen trial's weights); got 0"),
        (["--ensemble-top", "20"], "--ensemble-top must be between 1 and --keep-weights (10)"),
        (["--gpus-per-trial", "half"], "--gpus-per-trial must be a number or auto; got 'half'"),
        (["--gpu-memory-gib", "24"], "--gpu-memory-gib goes with --gpus-per-trial auto"),
        (["--target-recall", "0"], "--target-recall must be a number > 0.0 and <= 1.0; got 0.0"),
        (["--folds", "0"], "--folds must be an integer >= 1; got 0"),
        (["--folds", "many"], "argument --folds: must be an integer or auto; got 'many'"),
        (["--folds", "1000", "--space", "smoke"], "--folds 1000 needs 2 <= folds <= the images of the smaller class in "
                                                 "train (100: 300 negative, 100 positive)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "trials.csv").write_text("")
    argparse_error = "invalid choice" in message or message.startswith("argument ")
    with pytest.raises(SystemExit) if argparse_error else contextlib.nullcontext():
        code = main(["--storage-path", str(tmp_path), *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU here gives auto its memory")
def test_auto_gpu_shares_without_a_gpu_need_its_memory(capsys, tmp_path):
    assert main(["--storage-path", str(tmp_path), "--gpus-per-trial", "auto"]) == 2
    assert "--gpus-per-trial auto needs the GPU's memory" in capsys.readouterr().err


def test_argparse_errors_exit_2_without_usage_block():
    proc = subprocess.run([sys.executable, "-m", "search.run", "--scheduler", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "usage" not in proc.stderr


def test_dry_run_prints_the_full_grid_and_writes_nothing(capsys, tmp_path):
    assert main(["--space", "full", "--dry-run", "--storage-path", str(tmp_path / "results")]) == 0
    assert not (tmp_path / "results").exists()
    out = capsys.readouterr().out
    assert out.startswith("1440 trials") and "architecture: cnn, cnn_bn, resnet18, resnet50, efficientnet_b0" in out
    # The flags that change the count and the epochs are honoured.
    assert main(["--space", "full", "--dry-run", "--search", "optuna", "--num-samples", "3", "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 trials (full") and "drawn by optuna from the 1440 combinations" in out
    assert out.rstrip().endswith("max_epochs: 2")


def _search(tmp_path, *flags):
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "exp", *FAST, *flags])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    return pd.read_csv(folder / "trials.csv"), folder


def test_grid_search_runs_every_smoke_trial(smoke_experiment):
    folder = smoke_experiment  # --space smoke --image-size 16 --max-epochs 2, shared with the analysis tests
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 4 and set(trials["ended_by"]) <= {"max_epochs", "patience"}
    assert set(trials["config/architecture"]) == {"cnn", "cnn_bn"}
    assert trials["kept_val_recall"].between(0, 1).all() and (trials["error"].fillna("") == "").all()
    best = json.loads((folder / "best.json").read_text())
    assert best["config"]["architecture"] in {"cnn", "cnn_bn"} and 0 <= best["test"]["test_recall"] <= 1
    # The operating threshold travels with the model, as validation set it, and the test report applies it.
    assert best["operating_point"]["threshold"] == best["val"]["val_threshold_at_recall"]
    assert best["operating_point"]["scores"] == "validation" and best["deliverable"]["kind"] == "trial"
    assert 0 <= best["test_at_operating_threshold"]["test_recall"] <= 1
    recorded = json.loads((folder / "search.json").read_text())
    assert recorded["space"]["name"] == "smoke" and recorded["data"]["image_size"] == 16


def test_cross_validated_search_with_seeds_ranks_their_mean_and_delivers_every_model(ray_session, tmp_path):
    trials, folder = _search(tmp_path, "--folds", "2", "--seeds", "2", "--max-epochs", "1")
    assert len(trials) == 4 and trials["kept_val_auc_se"].notna().all() and trials["kept_oof_auc"].between(0, 1).all()
    best = json.loads((folder / "best.json").read_text())
    assert best["folds"] == 2 and best["config"]["folds"] == 2 and best["config"]["seeds"] == 2
    # The threshold is the ensemble's, set on the 50 validation positives that no fold model trained on.
    assert best["operating_point"]["scores"] == "the mean of its 2 seeds x 2 folds' validation"
    assert best["operating_point"]["positives"] == best["estimates"]["positives"] == 50
    assert len(best["deliverable"]["members"]) == 1 and best["deliverable"]["seeds"] == 2
    chosen = trials[trials["path"] == best["trial_path"]].iloc[0]
    assert chosen["kept_val_recall"] == best["val"]["val_recall"]  # ranked on the mean over seeds x folds
    for trial in trials.itertuples():  # each configuration trained 2 seeds x 2 folds
        (checkpoint,) = Path(trial.path).glob("checkpoint_*")
        assert [tuple(unit) for unit in load_kept(checkpoint)["units"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # Every trial was compared with the best on the same held-out images; the delivered one is the tie rule's.
    comparisons = json.loads((folder / "comparisons.json").read_text())
    assert comparisons["best"] in set(trials["trial_id"]) and best["choice"]["chosen"] == comparisons["chosen"]
    assert Path(best["trial_path"]).name.startswith(f"train_fn_{comparisons['chosen']}")
    assert set(trials["tie"].dropna()) <= {"best", "tied", "worse"} and (trials["tie"] == "best").sum() == 1
    assert {(e["architecture"], e["strategy"]) for e in comparisons["effects"]} == {("cnn", "both"), ("cnn_bn", "both")}


def test_optuna_under_the_asha_scheduler(ray_session, tmp_path):
    # Rungs after epochs 1 and 3; epoch 2 is neither a rung nor a last epoch, so it writes no checkpoint.
    trials, folder = _search(tmp_path, "--search", "optuna", "--num-samples", "3", "--scheduler", "asha",
                             "--reduction-factor", "3", "--max-epochs", "4")
    assert len(trials) == 3 and set(trials["config/strategy"]) <= {"none", "both"}
    assert trials["epochs"].between(1, 4).all()
    recorded = json.loads((folder / "search.json").read_text())
    assert recorded["asha"] == {"grace_period": 1, "reduction_factor": 3.0}
    for trial in trials.itertuples():  # stopped at a rung or not, the checkpoint is that of the last report
        (checkpoint,) = Path(trial.path).glob("checkpoint_*")
        assert load_kept(checkpoint)["epoch"] == trial.kept_epoch
        assert not (checkpoint / RESUME_FILE).exists()  # finished, stopped or not: nothing to resume
    # Whether ASHA stops one of the trials here depends on which of 2 running trials reports first; Tune
    # calls on_trial_complete for a stopped trial as for a finished one (TuneController.stop_trial).


def test_finished_trials_keep_only_the_weights_within_the_budget(ray_session, tmp_path):
    # One group (cnn, no strategy, no augmentation) of three trials: with --keep-weights 1 only the best keeps its weights.
    space = tmp_path / "lrs.json"
    space.write_text(json.dumps({"dimensions": {"lr": [0.001, 0.003, 0.01]}, "max_epochs": 2}))
    args = build_parser().parse_args(["--space", str(space), "--storage-path", str(tmp_path), "--name", "exp",
                                      "--image-size", "16", "--keep-weights", "1"])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    trials = pd.read_csv(folder / "trials.csv")
    best = json.loads((folder / "best.json").read_text())
    # Weight files only: a finished trial's folder also holds its small markers (trainables.checkpoints).
    kept = {row.trial_id: [p.name for p in Path(row.path).glob("checkpoint_*/*.pt") if p.name != HELD_OUT_FILE]
            for row in trials.itertuples()}
    assert sorted(map(sorted, kept.values())) == [[], [], [KEPT_FILE]]
    # Every trial keeps its held-out scores, which the comparisons read after its weights are gone.
    assert all(list(Path(row.path).glob(f"checkpoint_*/{HELD_OUT_FILE}")) for row in trials.itertuples())
    (winner,) = [t for t, files in kept.items() if files]
    assert trials.set_index("trial_id")["weights_kept"].to_dict() == {t: t == winner for t in kept}
    assert Path(best["trial_path"]).name.startswith(f"train_fn_{winner}")
    # The report reloads only kept weights: the chosen trial's is there, and nothing is missing.
    from analysis import build_report

    report = (build_report(str(folder), out_dir=tmp_path / "report", resamples=50) / "report.md").read_text()
    assert "Delivered model" in report and "cannot be read" not in report and "no checkpoint" not in report


def test_the_ensemble_of_the_top_trials_is_reported_beside_the_best(ray_session, tmp_path):
    trials, folder = _search(tmp_path, "--ensemble-top", "3", "--keep-weights", "3")
    best = json.loads((folder / "best.json").read_text())
    ensemble = best["ensemble"]
    assert len(ensemble["members"]) == 3 and ensemble["members"][0] == best["trial_path"]
    assert 0 <= best["test"]["test_auc"] <= 1 and 0 <= ensemble["val"]["val_auc"] <= 1
    # The ensemble is the deliverable: its threshold is set on its own validation scores, and its test is the result.
    assert best["deliverable"]["kind"] == "ensemble" and len(best["deliverable"]["members"]) == 3
    assert best["operating_point"]["threshold"] == ensemble["val"]["val_threshold_at_recall"]
    assert best["operating_point"]["scores"] == "the ensemble's validation"


def test_the_test_split_cannot_change_the_choice(ray_session, tmp_path):
    # Flipping every test label changes nothing a search chooses with: same trials, same validation metrics.
    from tests.conftest import make_npz

    chosen = []
    for flip in (False, True):
        data = make_npz(tmp_path / f"data{flip}.npz", n={"train": (24, 8), "val": (8, 4), "test": (8, 4)}, size=16)
        if flip:
            arrays = dict(np.load(data))
            arrays["test_labels"] = 1 - arrays["test_labels"]
            np.savez(data, **arrays)
        trials, folder = _search(tmp_path / str(flip), "--data", str(data))
        best = json.loads((folder / "best.json").read_text())
        chosen.append((best["config"], best["val"], trials.sort_values("trial_id")["objective"].tolist()))
    assert chosen[0] == chosen[1]


def test_cli_end_to_end_writes_trials_csv(smoke_command):
    assert smoke_command.returncode == 0, smoke_command.stderr[-2000:]
    assert len(pd.read_csv(smoke_command.folder / "trials.csv")) == 4  # written where the file:// URI says
    assert "Best configurations by val_specificity_at_recall" in smoke_command.stdout
    assert "Test split, touched once" in smoke_command.stdout and "operating threshold" in smoke_command.stdout


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


def _space_file(tmp_path, dimensions, max_epochs=1):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"dimensions": dimensions, "max_epochs": max_epochs}))
    return str(path)


HUNDRED_THOUSAND = {"lr": [i / 1000 for i in range(1, 101)], "batch_size": list(range(1, 101)),
                    "patience": list(range(1, 11))}


@pytest.mark.parametrize(
    "argv, message",
    [
        # item 4: keys that cannot be dimensions, sizes a model cannot take
        (["--space", {"metric": ["val_recall", "val_f2"]}],
         "space 'space': 'metric' cannot be a dimension, because trials are ranked against each other on one metric; "
         "pass --metric"),
        (["--space", {"min_balanced_accuracy": [0.5, 0.6]}],
         "space 'space': 'min_balanced_accuracy' cannot be a dimension, because trials are ranked under one guard; "
         "pass --min-balanced-accuracy"),
        (["--space", {"folds": [1, 5]}],
         "space 'space': 'folds' cannot be a dimension, because trials are compared on the same validation images; "
         "pass --folds"),
        (["--space", {"architecture": ["cnn"], "image_size": [16, 40]}],
         "the study's CNN needs an image size divisible by 16 (four 2x2 pools); got 40"),
        (["--space", {"image_size": [16, 32]}, "--image-size", "16"],
         "--image-size 16 conflicts with space 'space', which varies image_size (16, 32); drop one of them"),
        # item 5: resources no machine here has, and a space too large to launch unasked
        (["--cpus-per-trial", "10000"],
         "--cpus-per-trial 10000 is more than the {cpus} CPUs of this machine, so no trial could start; lower it, "
         "or run on a cluster with --address"),
        (["--space", HUNDRED_THOUSAND],
         "space 'space' has 100,000 trials, more than 2,000; pass --yes to run them all (--dry-run lists the dimensions)"),
        # item 6: a name no file system takes, a folder that cannot be created
        (["--name", "n" * 300], "--name is 300 characters long; a folder name holds at most 255 bytes"),
        (["--storage-path", "/proc/foo"], "--storage-path '/proc/foo' cannot be created: No such file or directory"),
        # item 8: flag errors name the flag, not the config key
        (["--min-balanced-accuracy", "1.5"], "--min-balanced-accuracy must be a number >= 0.0 and <= 1.0; got 1.5"),
        (["--seed", "-1"], "--seed must be an integer >= 0; got -1"),
        # item 9: a URI pyarrow has no filesystem for is refused, not turned into a folder called 'foo:'
        # (s3:// and gs:// buckets work: tests/search/test_cloud_storage.py)
        (["--storage-path", "foo://bucket/x"],
         "--storage-path 'foo://bucket/x': Unrecognized filesystem type in URI: foo://bucket/x"),
    ],
    ids=["metric-dimension", "guard-dimension", "folds-dimension", "size-a-model-cannot-take", "image-size-flag-and-dimension",
         "cpus-per-trial-99", "100k-trials-without-yes", "300-character-name", "proc-storage", "flag-name-guard",
         "flag-name-seed", "unknown-uri-scheme"],
)
def test_bad_input_is_refused_with_this_exact_line(argv, message, capsys, tmp_path):
    from search.preflight import local_cpus

    argv = [_space_file(tmp_path, a) if isinstance(a, dict) else a for a in argv]
    assert main(["--storage-path", str(tmp_path / "results"), *argv]) == 2
    assert capsys.readouterr().err == f"python -m search.run: error: {message.format(cpus=local_cpus())}\n"
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_gpu_trial_on_a_machine_without_gpu_is_refused(monkeypatch, capsys, tmp_path):
    """Regression: --gpus-per-trial 1 without a GPU waited forever."""
    import search.settings

    monkeypatch.setattr(search.settings, "local_gpus", lambda: 0)
    assert main(["--storage-path", str(tmp_path), "--gpus-per-trial", "1"]) == 2
    assert capsys.readouterr().err == (
        "python -m search.run: error: --gpus-per-trial 1 asks for a GPU, but torch sees none on this machine, so no "
        "trial could start; drop the flag, or run on a cluster with --address\n")


def test_dry_run_of_sixteen_million_trials_counts_without_building_them(capsys, tmp_path):
    """Regression: the dry run validated every combination first and printed nothing in 180 s."""
    space = _space_file(tmp_path, {"lr": [i / 1000 for i in range(1, 41)], "batch_size": list(range(1, 41)),
                                   "patience": list(range(1, 41)), "seed": list(range(250))})
    started = time.perf_counter()
    assert main(["--space", space, "--dry-run", "--storage-path", str(tmp_path)]) == 0
    assert time.perf_counter() - started < 10
    assert capsys.readouterr().out.startswith("16000000 trials (space: from ")


def test_yes_lets_a_large_space_through_the_count_check(monkeypatch, tmp_path):
    import search.run as cli

    def stop(settings, args):
        raise InputError("stopped after the count check")

    monkeypatch.setattr(cli, "prepare_inputs", stop)
    assert main(["--space", _space_file(tmp_path, HUNDRED_THOUSAND), "--yes", "--storage-path", str(tmp_path)]) == 2


def test_an_image_size_dimension_decodes_every_size(tmp_path):
    """Regression: trials of an image_size dimension failed with KeyError: 64, the size never decoded."""
    args = build_parser().parse_args(["--space", _space_file(tmp_path, {"image_size": [16, 32, 64]}),
                                      "--storage-path", str(tmp_path)])
    settings = settings_from_args(args)
    datasets, _, _ = prepare_inputs(settings, args)
    assert sorted(datasets) == [16, 32, 64] and data_options(args, settings.space)["image_size"] == [16, 32, 64]


def test_a_search_where_every_trial_errors_exits_1(ray_session, monkeypatch, capsys, tmp_path):
    """Regression: it exited 0 when nothing worked."""
    import search.run as cli

    # Data decoded at 8 px only, trials asking for 16: every trial raises KeyError in train_fn.
    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({8: tiny_dataset(size=8)}, {}, None))
    space = tmp_path / "two.json"  # each failed trial's worker is replaced: two trials cost less than four
    space.write_text(json.dumps({"dimensions": {"architecture": ["cnn"], "strategy": ["none", "both"]}}))
    assert main(["--space", str(space), "--storage-path", str(tmp_path), "--name", "doomed", *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    trials = tmp_path / "doomed" / "trials.csv"
    assert err == f"python -m search.run: error: all 2 trials failed, the first with RayTaskError(KeyError): KeyError: 16 (every error is in {trials})"
    assert (pd.read_csv(trials)["ended_by"] == "error").all() and not (tmp_path / "doomed" / "best.json").exists()


def test_file_uri_storage_path_is_the_local_folder(tmp_path):
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", f"file://{tmp_path}/r", "--name", "x"])
    assert settings_from_args(args).storage_path == tmp_path / "r"


def test_a_cluster_run_says_the_storage_path_must_be_shared(monkeypatch, capsys, tmp_path):
    import search.run as cli
    import search.settings

    def stop(settings, args):
        raise InputError("stopped after the note")

    monkeypatch.setattr(search.settings, "check_address", lambda address: None)
    monkeypatch.setattr(cli, "prepare_inputs", stop)
    assert main(["--storage-path", str(tmp_path), "--address", "10.0.0.5:6379"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"python -m search.run: note: with --address, --storage-path '{tmp_path}' must be one folder shared by every "
        "node of the cluster (a network mount at the same path): trials write their checkpoints there")


def test_folds_auto_is_decided_from_the_data_and_a_resume_keeps_what_the_experiment_started_with(tmp_path):
    flags = ["--space", "smoke", "--storage-path", str(tmp_path), "--name", "exp"]
    args = build_parser().parse_args(flags)
    settings = settings_from_args(args)
    assert settings.fixed["folds"] == "auto"
    assert with_folds_decided(settings, {16: tiny_dataset()}).fixed["folds"] == 5  # 6 validation positives
    assert with_folds_decided(settings, {16: tiny_dataset(n=400, positive=0.5)}).fixed["folds"] == 1  # 100
    started = dataclasses.replace(settings, fixed={**settings.fixed, "folds": 3})  # as run() records it
    write_json_atomically(started.describe(data_options(args, started.space)), tmp_path / "exp" / SETTINGS_FILE)
    assert settings_from_args(build_parser().parse_args(flags + ["--resume"])).fixed["folds"] == 3
