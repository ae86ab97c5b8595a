"""--search optuna --storage URL keeps the Optuna study in a database that Optuna (and optuna-dashboard) reopens."""

import optuna
import pandas as pd
import pytest

from search.run import build_parser, data_options, main, prepare_inputs, run, settings_from_args


def test_the_study_is_reopened_from_the_database_file(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "exp",
                                      "--image-size", "16", "--max-epochs", "1", "--search", "optuna",
                                      "--num-samples", "3", "--storage", url])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    trials = pd.read_csv(folder / "trials.csv")

    study = optuna.load_study(study_name="exp", storage=url)  # what optuna-dashboard does with the same URL
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert sorted(t.params["strategy"] for t in done) == sorted(trials["config/strategy"])
    # Optuna was told each trial's tiebroken_objective: the objective plus a nudge of at most 0.001001
    values, objectives = sorted(t.value for t in done), sorted(trials["objective"])
    assert all(0 <= v - o <= 0.0011 for v, o in zip(values, objectives, strict=True)), (values, objectives)
    assert {t.params["architecture"] for t in done} <= {"cnn", "cnn_bn"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--storage", "sqlite:///s.db"], "--storage goes with --search optuna"),
        (["--search", "optuna", "--storage", "study.db"], "--storage 'study.db' is not a database URL"),
        (["--study-name", "x"], "--study-name goes with --storage"),
        (["--search", "optuna", "--storage", "sqlite:////no/such/folder/s.db"], "folder '/no/such/folder' does not exist"),
        (["--progress-interval", "0"], "--progress-interval must be > 0"),
    ],
)
def test_bad_storage_flags_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(["--storage-path", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
