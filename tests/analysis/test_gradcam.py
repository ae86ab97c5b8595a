import numpy as np
import pytest

from analysis import gradcam_figure, pick_examples
from tests.conftest import tiny_dataset
from tests.trainables.test_explain import classifier_of
from trainables import TrialConfig, get_spec, run_trial


@pytest.fixture(scope="module")
def trained():
    """A study CNN trained for a few epochs on images whose positives carry a bright square."""
    data = tiny_dataset(n=96, size=32)
    cfg = TrialConfig.from_dict({"architecture": "cnn_bn", "max_epochs": 4, "lr": 0.003})
    (run,) = run_trial(cfg, data, spec=get_spec(cfg.architecture), report=lambda m, s: None)
    return classifier_of([run.model.eval()], "cnn_bn"), data


def test_examples_are_sorted_into_kinds():
    y_true = np.array([1, 1, 0, 0, 1])
    y_pred = np.array([1, 0, 1, 0, 1])
    kinds = pick_examples(y_true, y_pred, per_kind=4)
    assert kinds["true positive"].tolist() == [0, 4]
    assert kinds["false negative"].tolist() == [1] and kinds["false positive"].tolist() == [2]


def test_gradcam_figure_has_a_row_per_kind(trained):
    classifier, data = trained
    y_pred = np.where(np.arange(len(data.test)) % 3 == 0, 1 - data.test.labels, data.test.labels)
    fig = gradcam_figure(classifier, data.test, y_pred, title="t", per_kind=3)
    assert len(fig.axes) == 9
