import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from search import get_space, list_spaces, param_space, validate_space
from search.spaces import Distribution, Space
from search.tuner import SearchSettings
from trainables import InputError, list_models, list_strategies


def test_full_is_the_study_grid():
    full = get_space("full")
    assert full.num_grid_trials == 1440 == len(list(full.grid()))
    assert set(full.dimensions["architecture"]) == set(list_models())
    assert set(full.dimensions["strategy"]) == set(list_strategies())
    assert full.dimensions["lr"] == (0.001, 0.01, 0.1) and full.dimensions["patience"] == (5, 7, 10)


@pytest.mark.parametrize("name", list_spaces())
def test_every_registered_space_is_valid(name):
    validate_space(get_space(name))


def test_quick_and_smoke_sizes():
    assert get_space("quick").num_grid_trials == 8
    assert get_space("smoke").num_grid_trials == 4


def test_param_space_grid_and_optuna():
    space = get_space("smoke")
    grid = param_space(SearchSettings(space=space, name="x", storage_path=".", fixed={"seed": 1}))
    assert grid["architecture"] == {"grid_search": ["cnn", "cnn_bn"]} and grid["lr"] == 0.001 and grid["seed"] == 1
    optuna = param_space(SearchSettings(space=space, name="x", storage_path=".", search="optuna"))
    assert optuna["architecture"].categories == ["cnn", "cnn_bn"]


def test_space_from_json_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"dimensions": {"lr": [0.01, 0.1], "augment": [True]}, "max_epochs": 4}))
    space = get_space(str(path))
    assert space.num_grid_trials == 2 and space.max_epochs == 4


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ('{"dimensions": []}', "must be an object like"),
        ('{"dimensions": {"colour": [1]}}', "unknown dimension 'colour'"),
        ('{"dimensions": {"lr": []}}', "non-empty list"),
        ('{"dimensions": {"architecture": ["cnn", "vgg"]}}', "unknown architecture 'vgg'"),
        ('{"dimensions": {"lr": [0.1]}, "max_epochs": 0}', "max_epochs must be an integer >= 1"),
    ],
)
def test_malformed_space_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        get_space(str(path))


def test_a_missing_space_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"space file '.*none\.json' does not exist"):
        get_space(str(tmp_path / "none.json"))


def test_unknown_space_lists_choices():
    with pytest.raises(InputError, match="unknown space 'nonsense'; choose from smoke, quick, full"):
        get_space("nonsense")


def test_an_invalid_combination_is_named():
    with pytest.raises(InputError, match="space 'bad'.*batch_size"):
        validate_space(Space("bad", {"batch_size": (32, -1)}, max_epochs=2))


DOCS = Path(__file__).resolve().parents[2] / "docs" / "spaces.md"


def _docs_continuous_space() -> str:
    match = re.search(r"<!-- continuous space example -->\s*```json\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"{DOCS} lost its continuous space example"
    return match.group(1)


def test_a_distribution_in_a_space_file_is_a_range_that_grid_search_refuses(tmp_path):
    path = tmp_path / "continuous.json"
    path.write_text(_docs_continuous_space())
    space = get_space(str(path))
    assert space.distributions == {"lr": Distribution("loguniform", 0.0001, 0.01),
                                   "patience": Distribution("randint", 2, 4)}
    assert space.num_grid_trials == math.inf and space.varies("lr") and not space.varies("architecture")
    assert "lr: loguniform(0.0001, 0.01)" in space.describe(trials=3, searcher="optuna")


@pytest.mark.parametrize("dimension, message", [
    ({"architecture": {"loguniform": [1, 2]}}, "'architecture' cannot be a loguniform distribution"),
    ({"patience": {"loguniform": [1, 2]}}, "'patience' cannot be a loguniform distribution; it can be randint"),
    ({"lr": {"loguniform": [0, 0.1]}}, "lr loguniform(0, 0.1): lr must be a number > 0.0"),
    ({"lr": {"uniform": [0.1, 0.01]}}, "the low end must be below the high end"),
    ({"lr": {"normal": [0, 1]}}, "unknown distribution 'normal'"),
    ({"lr": {"loguniform": [0.1]}}, "loguniform takes [low, high]"),
])
def test_a_bad_distribution_is_refused_in_one_line(dimension, message, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"dimensions": dimension}))
    with pytest.raises(InputError, match=re.escape(message)):
        get_space(str(path))


def test_the_docs_continuous_space_runs_under_optuna_and_draws_within_its_ranges(ray_session, tmp_path):
    from search.run import build_parser, data_options, prepare_inputs, run, settings_from_args

    path = tmp_path / "continuous.json"
    path.write_text(_docs_continuous_space())
    with pytest.raises(InputError, match="which grid search cannot enumerate"):
        settings_from_args(build_parser().parse_args(["--space", str(path), "--storage-path", str(tmp_path)]))
    args = build_parser().parse_args(["--space", str(path), "--search", "optuna", "--num-samples", "3",
                                      "--image-size", "16", "--storage-path", str(tmp_path), "--name", "c"])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    folder = run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
                 data_options=data_options(args))
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 3 and trials["config/lr"].between(0.0001, 0.01).all()
    assert trials["config/lr"].nunique() == 3 and set(trials["config/patience"]) <= {2, 3, 4}
