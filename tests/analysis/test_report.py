"""A real smoke experiment, loaded into pandas and reported."""

import json
import shutil
import subprocess
import sys

import pytest

from analysis import ExperimentError, build_report, load_epochs, load_experiment, load_trials
from search.comparison import ties_in_words


@pytest.fixture
def experiment(smoke_experiment):
    return smoke_experiment


def test_loader_gives_one_row_per_trial_and_per_epoch(experiment):
    trials = load_trials(experiment)
    epochs = load_epochs(experiment)
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert len(epochs) == trials["epochs"].sum()
    assert epochs.groupby("trial_id").size().to_dict() == dict(zip(trials["trial_id"], trials["epochs"], strict=True))
    assert {"config/architecture", "val_recall", "train_loss"} <= set(epochs.columns)


def test_report_writes_markdown_html_and_every_figure(smoke_report):
    out = smoke_report
    md = (out / "report.md").read_text()
    for part in ("Best configuration per architecture", "Delivered model", "bootstrap", "Grad-CAM",
                 "4 finished", "precision    recall  f1-score"):
        assert part in md, part
    for kind in ("confusion", "roc", "pr", "learning_curves", "gradcam"):
        assert (out / f"delivered_{kind}.png").stat().st_size > 1000, kind
    assert (out / "all_trials.png").is_file()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == md.count("![")


def test_report_answers_the_study_question(smoke_experiment, smoke_report):
    """Importance, strategy panel, parallel coordinates, Pareto front, validation vs test; guard failures in words."""
    md = (smoke_report / "report.md").read_text()
    for part in ("What mattered", "fANOVA", "| dimension", "Pareto front", "Validation estimate vs test result",
                 "recall validation", "recall test", "positives val / test"):
        assert part in md, part
    for kind in ("importance", "strategy_panel", "parallel_coordinates", "pareto", "validation_vs_test"):
        assert (smoke_report / f"{kind}.png").stat().st_size > 1000, kind
    trials = load_trials(smoke_experiment)
    if (trials["guard_passed"] == False).any():  # noqa: E712
        assert "failed guard: balanced accuracy" in md
    comparison = md.split("## Best configuration per architecture")[1].split("## What mattered")[0]
    assert "-1.0000" not in comparison and "-2.0000" not in comparison
    # What the data can tell apart: the ties with the best and the strategy effects, as the search recorded them.
    told = md.split("## What the data can tell apart")[1].split("## What mattered")[0]
    record = json.loads((smoke_experiment / "comparisons.json").read_text())
    assert ties_in_words(record) in told and "| best minus this" in told and "| verdict" in told
    assert f"Delivered: {record['chosen']}, by the rule --on-ties best" in told and record["chosen"] == record["best"]
    assert set(trials["tie"].dropna()) <= {"best", "tied", "worse", ""}


def test_a_missing_checkpoint_is_listed_and_the_rest_still_written(experiment, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(experiment, copy)
    best = load_experiment(copy)
    for path in best.trials["path"]:
        for checkpoint in (copy / path.split("/")[-1]).glob("checkpoint_*"):
            shutil.rmtree(checkpoint)
    out = build_report(str(copy), out_dir=tmp_path / "report", resamples=50)
    md = (out / "report.md").read_text()
    assert "What could not be shown" in md and "cannot be read" in md
    assert "Best configuration per architecture" in md


def test_a_folder_that_is_not_an_experiment(tmp_path):
    with pytest.raises(ExperimentError, match="is not an experiment written by search.run"):
        load_experiment(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_the_report_refuses_data_changed_since_the_search(ray_session, tmp_path):
    import json

    import numpy as np

    from search.data_record import DataChangedError
    from search.run import build_parser, data_options, prepare_inputs, run, settings_from_args
    from tests.conftest import make_npz

    data = make_npz(tmp_path / "data.npz", n={"train": (24, 8), "val": (8, 4), "test": (8, 4)}, size=16)
    space = tmp_path / "one.json"
    space.write_text(json.dumps({"dimensions": {"architecture": ["cnn"]}, "max_epochs": 1}))
    args = build_parser().parse_args(["--space", str(space), "--data", str(data), "--storage-path", str(tmp_path),
                                      "--name", "exp", "--image-size", "16"])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    recorded = json.loads((folder / "data.json").read_text())
    assert len(recorded["hashes"]) == 56 and sorted(sum(recorded["splits"].values(), [])) == list(range(56))

    arrays = dict(np.load(data))
    arrays["test_labels"] = arrays["test_labels"].copy()
    arrays["test_labels"][0] = 1 - arrays["test_labels"][0]  # one label flipped in place
    np.savez(data, **arrays)
    with pytest.raises(DataChangedError, match=r"is not the data this experiment's search saw: 1 labels changed "
                                               r"\(the first at position 44\)"):  # after 32 train and 12 val images
        build_report(str(folder), out_dir=tmp_path / "report", resamples=50)


def test_one_threshold_in_best_json_the_report_and_the_exported_card(smoke_experiment, smoke_report, tmp_path):
    import json

    from search.export import export

    best = json.loads((smoke_experiment / "best.json").read_text())
    card = json.loads((export(smoke_experiment, tmp_path / "m", command="test", onnx=False) / "model.json").read_text())
    threshold = best["operating_point"]["threshold"]
    assert card["threshold"] == threshold
    md = (smoke_report / "report.md").read_text()
    delivered = md.split("## Delivered model")[1].split("\n## ")[0]
    assert f"positive when probability >= {threshold:.4f}" in delivered
    assert f"operating threshold {threshold:.4f}" in delivered
    assert "Test split at 0.5" in delivered and "Grad-CAM" in delivered and "first fold model" not in md


def test_a_diverged_trial_is_labelled_and_counted_on_the_console_and_in_the_report(ray_session, tmp_path, capsys):
    import json

    from search.run import build_parser, data_options, prepare_inputs, run, settings_from_args

    space = tmp_path / "diverge.json"
    space.write_text(json.dumps({"dimensions": {"architecture": ["cnn"], "lr": [0.001, 1e6], "optimizer": ["sgd"]},
                                 "max_epochs": 2}))
    args = build_parser().parse_args(["--space", str(space), "--storage-path", str(tmp_path), "--name", "exp",
                                      "--image-size", "16"])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    console = capsys.readouterr().out
    assert "diverged (a loss or score that is not finite)" in console and "failed guard" not in console
    md = (build_report(str(folder), out_dir=tmp_path / "report", resamples=50) / "report.md").read_text()
    assert "1 diverged" in md and "Diverged (1 of 2 trials" in md
