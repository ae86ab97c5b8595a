"""The delivered model leaves a smoke experiment as a folder: export, load in one call, predict, ONNX."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from search.export import export
from search.predict import main as predict_main
from trainables import Classifier, load_datasets


@pytest.fixture(scope="module")
def exported(smoke_experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "model"
    return export(smoke_experiment, out, command="python -m search.export exp --out model")


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Twelve of the embedded set's test images as PNG files, one of them 16-bit, in nested folders."""
    root = tmp_path_factory.mktemp("pngs")
    images = load_datasets("pneumonia", image_sizes=[28])[28].test.images[:12, 0]
    (root / "nested").mkdir()
    for i, image in enumerate(images[:11]):
        Image.fromarray(image).save(root / ("nested" if i % 2 else ".") / f"x{i:02d}.png")
    Image.fromarray(images[11].astype(np.uint16) * 257).save(root / "sixteen_bit.png")
    return root


def test_the_export_holds_the_card_weights_onnx_and_a_readme(smoke_experiment, exported):
    best = json.loads((smoke_experiment / "best.json").read_text())
    card = json.loads((exported / "model.json").read_text())
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "model.json", "model.onnx",
                                                          "weights.safetensors"]
    assert card["threshold"] == best["operating_point"]["threshold"] == Classifier.load(exported).threshold
    assert card["target_recall"] == 0.9 and card["operating_point"]["rule"].startswith("split conformal")
    assert card["positive_class"] == "pneumonia" and card["classes"] == ["normal", "pneumonia"]
    assert card["test"]["images"] == 200 and card["test"]["at_threshold"] == best["test_at_operating_threshold"]
    assert card["data"]["fingerprint"] and card["data"]["duplicates"]["exact"] >= 0
    assert card["versions"]["torch"] and card["folds"] == 1 and card["estimates"]["auc"]["low"] <= \
        card["estimates"]["auc"]["estimate"] <= card["estimates"]["auc"]["high"]
    assert f"{card['threshold']:.4f}" in (exported / "README.md").read_text()


def test_load_predict_and_onnx_agree_on_the_experiment_and_its_export(smoke_experiment, exported, pngs, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX needs the [onnx] extra: pip install '.[onnx]'")
    from_export, from_experiment = Classifier.load(exported), Classifier.load(smoke_experiment)
    images = load_datasets("pneumonia", image_sizes=[16])[16].test.images
    probability = from_export.predict_proba(images)
    np.testing.assert_array_equal(probability, from_experiment.predict_proba(images))
    onnx = ort.InferenceSession(str(exported / "model.onnx")).run(None, {"images": images.astype(np.float32) / 255})[0]
    np.testing.assert_allclose(onnx, probability, atol=1e-4)

    # The command line, in a process of its own: it must not need Ray.
    out = tmp_path / "p.csv"
    proc = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.argv = sys.argv[1:]; "
                           "runpy.run_module('search.predict', run_name='__main__'); ",
                           "predict", str(exported), str(pngs), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12 and {r["positive"] for r in rows} <= {"0", "1"}
    for row in rows:
        assert int(row["positive"]) == (float(row["probability"]) >= from_export.threshold)
    by_name = {r["image"].rsplit("/", 1)[-1]: float(r["probability"]) for r in rows}
    assert by_name["sixteen_bit.png"] == pytest.approx(by_name.get("x11.png", by_name["sixteen_bit.png"]))


def test_predict_refuses_bad_input_in_one_line_and_leaves_no_csv(exported, pngs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_text("not an image")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    out = tmp_path / "p.csv"
    cases = {"does not exist": [str(tmp_path / "missing")], "no image found": [str(tmp_path / "empty")],
             "cannot read image": [str(pngs), str(tmp_path / "broken.png")],
             "trained on greyscale": [str(tmp_path / "rgb.png")]}
    for message, images in cases.items():
        assert predict_main([str(exported), *images, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists() and not list(tmp_path.glob(".p.csv.*"))
    assert predict_main([str(tmp_path / "empty"), str(pngs), "--out", str(out)]) == 2
    assert "neither an exported model" in capsys.readouterr().err


def test_gradcam_overlays_are_written_for_the_positives(exported, pngs, tmp_path):
    out, maps = tmp_path / "p.csv", tmp_path / "maps"
    assert predict_main([str(exported), str(pngs), "--out", str(out), "--gradcam", str(maps),
                         "--gradcam-which", "all"]) == 0
    assert len(list(maps.glob("*.gradcam.png"))) == 12


def test_the_readmes_model_example_runs_as_written(exported, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = re.search(r"<!-- model example -->\s*```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code.replace('"my-model"', repr(str(exported))), "README.md", "exec"), namespace)
    assert len(namespace["probability"]) == 200 and "flagged at" in capsys.readouterr().out
