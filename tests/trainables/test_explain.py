import numpy as np
import pytest
import torch

from tests.conftest import tiny_dataset
from trainables import TrialConfig, get_spec, run_trial
from trainables.classifier import Classifier, Ensemble, Member, MemberSpec
from trainables.explain import gradcam_maps
from trainables.operating import OperatingPoint

POINT = OperatingPoint(0.5, 0.9, 10, 10, "validation")


def classifier_of(models: list, architecture: str, *, channels: int = 1, size: int = 32) -> Classifier:
    specs = [MemberSpec(architecture, channels, size, fold=i) for i in range(len(models))]
    return Classifier(Ensemble([Member(m, architecture, channels) for m in models]), specs, POINT)


@pytest.fixture(scope="module")
def trained():
    """Two study CNNs (the folds of one trial) trained for a few epochs on images whose positives carry a bright square."""
    data = tiny_dataset(n=96, size=32)
    cfg = TrialConfig.from_dict({"architecture": "cnn_bn", "max_epochs": 4, "lr": 0.003, "folds": 2})
    runs = run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: None)
    return classifier_of([run.model.eval() for run in runs], "cnn_bn"), data


def test_gradcam_of_the_delivered_ensemble_has_the_input_size_and_is_not_constant(trained):
    classifier, data = trained
    maps = gradcam_maps(classifier, data.test.images[data.test.labels == 1][:4])
    assert maps.shape == (4, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(m.std() > 0 for m in maps)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_gradcam_layers_of_imagenet_models_give_input_sized_maps(name):
    torch.manual_seed(0)
    spec = MemberSpec(name, 1, 64)
    maps = gradcam_maps(classifier_of([spec.build().eval()], name, size=64),
                        np.random.default_rng(0).integers(0, 255, (2, 1, 64, 64), dtype=np.uint8))
    assert maps.shape == (2, 64, 64)
