"""--search optuna --storage URL keeps the Optuna study in a database that Optuna (and optuna-dashboard) reopens."""

import optuna
import pandas as pd
import pytest

from search.run import build_parser, data_options, main, prepare_inputs, run, settings_from_args
from search.searchers import trials_in_study
from tests.conftest import tiny_dataset


def test_the_study_is_reopened_from_the_database_file_with_every_epoch_of_every_trial(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", str(tmp_path), "--name", "exp",
                                      "--image-size", "16", "--max-epochs", "3", "--search", "optuna",
                                      "--num-samples", "3", "--storage", url, "--scheduler", "asha",
                                      "--reduction-factor", "3"])
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
    # Each Optuna trial names its Ray trial and holds one value per epoch it ran, the last (Tune hands
    # only to on_trial_complete) and those of trials ASHA stopped at a rung included.
    epochs = dict(zip(trials["trial_id"], trials["epochs"], strict=True))
    assert {t.user_attrs["ray_trial_id"]: sorted(t.intermediate_values) for t in done} == {
        trial: list(range(1, n + 1)) for trial, n in epochs.items()}
    assert all(t.intermediate_values[max(t.intermediate_values)] == t.value for t in done)
    assert trials_in_study(url, "exp") == 3 and trials_in_study(url, "another") == 0


def test_a_study_name_reused_says_the_search_adds_to_it(tmp_path, monkeypatch, capsys):
    import search.run as cli

    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=url).enqueue_trial({"lr": 0.1})
    monkeypatch.setattr(cli, "prepare_inputs", lambda settings, args: ({16: tiny_dataset()}, {}, 16))
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: None)
    assert main(["--space", "smoke", "--storage-path", str(tmp_path), "--search", "optuna", "--num-samples", "2",
                 "--storage", url, "--study-name", "shared"]) == 0
    assert ("note: study 'shared' in --storage already holds 1 trial; this search adds its trials to it, and "
            "Optuna's sampler learns from the earlier ones too") in capsys.readouterr().out


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
