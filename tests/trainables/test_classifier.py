from dataclasses import asdict

import numpy as np
import pytest
import torch

from trainables import InputError
from trainables.classifier import Classifier, Ensemble, Member, MemberSpec, export_onnx
from trainables.models import list_models
from trainables.operating import OperatingPoint

POINT = OperatingPoint(0.4, 0.9, 10, 10, "validation")


class EachMember(torch.nn.Module):
    """Every member's probability, side by side: one export checks every architecture."""

    def __init__(self, ensemble: Ensemble) -> None:
        super().__init__()
        self.members = ensemble.members

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members], dim=1)


@pytest.fixture(scope="module")
def every_architecture() -> Classifier:
    torch.manual_seed(0)
    specs = [MemberSpec(name, 1, 32) for name in list_models()]  # weights=None: fresh, untrained
    return Classifier(Ensemble([Member(s.build().eval(), s.architecture, 1) for s in specs]), specs, POINT)


def test_onnx_probabilities_equal_predict_proba_for_every_architecture(every_architecture, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX needs the [onnx] extra: pip install '.[onnx]'")
    classifier = every_architecture
    export_onnx(EachMember(classifier.module), tmp_path / "each.onnx", channels=1, image_size=32)
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 32, 32), dtype=np.uint8)
    onnx = ort.InferenceSession(str(tmp_path / "each.onnx")).run(None, {"images": images.astype(np.float32) / 255})[0]
    assert onnx.shape == (5, len(list_models()))
    each = EachMember(classifier.module)(classifier.as_input(images)).detach().numpy()
    np.testing.assert_allclose(onnx, each, atol=1e-4)
    np.testing.assert_allclose(onnx.mean(axis=1), classifier.predict_proba(images), atol=1e-4)


def test_saved_weights_load_back_without_pickle_and_predict_the_same(every_architecture, tmp_path):
    classifier = every_architecture
    card = {"members": [asdict(m) for m in classifier.members], "operating_point": POINT.to_json()}
    classifier.save(tmp_path, card)
    loaded = Classifier.load(tmp_path)
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32), dtype=np.uint8)  # (N, H, W) is taken too
    np.testing.assert_array_equal(loaded.predict_proba(images), classifier.predict_proba(images))
    assert loaded.threshold == 0.4 and loaded.predict(images).tolist() == \
        (classifier.predict_proba(images) >= 0.4).astype(int).tolist()


def test_images_are_resized_as_training_resizes_them_and_bad_shapes_are_refused(every_architecture):
    from trainables.images import resize_images

    classifier = every_architecture
    big = np.random.default_rng(2).integers(0, 256, (2, 1, 64, 64), dtype=np.uint8)
    np.testing.assert_array_equal(classifier.predict_proba(big), classifier.predict_proba(resize_images(big, 32)))
    with pytest.raises(InputError, match="3 channel"):
        classifier.predict_proba(np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(InputError, match="must already be 32x32"):
        classifier.predict_proba(np.zeros((2, 1, 20, 20), np.float32))
