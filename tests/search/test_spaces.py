import json

import pytest

from search import get_space, list_spaces, param_space, validate_space
from search.spaces import Space
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
