import numpy as np
import pytest
import torch

from analysis import gradcam_figure, gradcam_maps, pick_examples
from tests.conftest import tiny_dataset
from trainables import TrialConfig, create_model, get_spec, run_trial


@pytest.fixture(scope="module")
def trained():
    """A study CNN trained for a few epochs on images whose positives carry a bright square."""
    data = tiny_dataset(n=96, size=32)
    cfg = TrialConfig.from_dict({"architecture": "cnn_bn", "max_epochs": 4, "lr": 0.003})
    (run,) = run_trial(cfg, data, report=lambda m, s: None)
    model = run.model
    return model.eval(), cfg, data


def test_gradcam_has_the_input_size_and_is_not_constant(trained):
    model, cfg, data = trained
    x = torch.from_numpy(data.test.images[data.test.labels == 1][:4]).float() / 255
    maps = gradcam_maps(model, x, get_spec(cfg.architecture).gradcam_layer(model))
    assert maps.shape == (4, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(m.std() > 0 for m in maps)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_gradcam_layers_of_imagenet_models_give_input_sized_maps(name):
    torch.manual_seed(0)
    model = create_model(name, image_size=64).eval()
    maps = gradcam_maps(model, torch.rand(2, 3, 64, 64), get_spec(name).gradcam_layer(model))
    assert maps.shape == (2, 64, 64)


def test_examples_are_sorted_into_kinds():
    y_true = np.array([1, 1, 0, 0, 1])
    y_pred = np.array([1, 0, 1, 0, 1])
    kinds = pick_examples(y_true, y_pred, per_kind=4)
    assert kinds["true positive"].tolist() == [0, 4]
    assert kinds["false negative"].tolist() == [1] and kinds["false positive"].tolist() == [2]


def test_gradcam_figure_has_a_row_per_kind(trained):
    model, cfg, data = trained
    y_pred = np.where(np.arange(len(data.test)) % 3 == 0, 1 - data.test.labels, data.test.labels)
    fig = gradcam_figure(model, cfg, data.test, y_pred, title="t", per_kind=3)
    assert len(fig.axes) == 9
