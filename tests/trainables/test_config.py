import pytest

from trainables import DEFAULTS, InputError, TrialConfig


def test_defaults_fill_in():
    cfg = TrialConfig.from_dict({"lr": 0.01})
    assert cfg.lr == 0.01 and cfg.architecture == DEFAULTS["architecture"] and cfg.mode == "max"


@pytest.mark.parametrize(
    "config, match",
    [
        ({"architecture": "vgg"}, "unknown architecture 'vgg'"),
        ({"strategy": "smote"}, "unknown imbalance strategy 'smote'"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of adam, sgd"),
        ({"lr": 0}, "lr must be a number > 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"patience": 2.5}, "patience must be an integer"),
        ({"augment": "yes"}, "augment must be true or false"),
        ({"metric": "val_recal"}, "metric must be one of"),
        ({"min_balanced_accuracy": 2}, "min_balanced_accuracy must be a number"),
        ({"learning_rate": 0.1}, "unknown config key"),
    ],
)
def test_bad_values_are_named(config, match):
    with pytest.raises(InputError, match=match):
        TrialConfig.from_dict(config)
