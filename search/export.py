"""``python -m search.export <experiment> --out <dir>``: the delivered model as a folder to run, ship and load.

The folder holds ``model.json`` (the card: what the model takes, its one
threshold with the rule that set it, its estimates and its test result as
``best.json`` recorded them), ``weights.safetensors`` (every member, no
pickle), ``model.onnx`` (the whole ensemble, normalisation inside: float32
``images [N, C, S, S]`` in [0, 1] -> ``probability [N]``) and ``README.md``
(the card for a person). Load it with ``trainables.Classifier.load(dir)``;
predict with ``python -m search.predict <dir> <images>``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from search.cli import OneLineParser
from search.data_record import DATA_FILE
from search.files import umask
from trainables import InputError
from trainables.classifier import BEST_FILE, CARD_FILE, ONNX_FILE, Classifier
from trainables.models import get_spec
from trainables.storage import Storage, is_remote, user_folder

CARD_FORMAT = 1
VERSIONED = ("torch", "torchvision", "ray", "onnx", "onnxruntime", "safetensors", "rare-class-search")


def model_card(classifier: Classifier, best: dict[str, Any], data: dict[str, Any] | None, *,
               command: str) -> dict[str, Any]:
    """``model.json``: everything a user needs to run the model and to know what its numbers mean."""
    deliverable, point = best["deliverable"], classifier.operating_point
    architectures = [m.architecture for m in classifier.members]
    classes = deliverable["class_names"]
    return {
        "format": CARD_FORMAT,
        "summary": deliverable["summary"],
        "architecture": architectures[0] if len(set(architectures)) == 1 else sorted(set(architectures)),
        "members": [asdict(m) for m in classifier.members],
        "image_size": classifier.image_size,
        "channels": classifier.channels,
        "input": (f"float32 [N, {classifier.channels}, {classifier.image_size}, {classifier.image_size}] in [0, 1] "
                  "(uint8 pixels / 255), resized as in training; the normalisation below is inside the model"),
        "normalisation": {a: _normalisation(a) for a in sorted(set(architectures))},
        "output": "probability of the positive class, [N]",
        "classes": classes,
        "positive_class": classes[1],
        "threshold": point.threshold,
        "target_recall": point.target_recall,
        "operating_point": point.to_json(),
        "folds": deliverable["folds"],
        "estimates": best["estimates"],
        "test": {
            **best["test_images"],
            "at_threshold": best.get("test_at_operating_threshold"),
            "at_0.5": best["test"],
            "check": best.get("test_check"),
            "note": "computed once, by the search, for this model only",
        },
        "data": _data_card(data, deliverable),
        "versions": versions(),
        "command": {"search": best.get("command"), "export": command},
        "trials": [m["trial"] for m in deliverable["members"]],
    }


def _normalisation(architecture: str) -> dict[str, Any] | None:
    norm = get_spec(architecture).normalization()
    return None if norm is None else {"mean": list(norm[0]), "std": list(norm[1])}


def _data_card(data: dict[str, Any] | None, deliverable: dict[str, Any]) -> dict[str, Any]:
    """The data's fingerprint (a hash of every image's hash, label and split) and duplicates, from data.json."""
    if data is None:
        return {"source": deliverable.get("data_source"), "fingerprint": None, "duplicates": None}
    content = json.dumps({k: data.get(k) for k in ("hashes", "labels", "splits")}, sort_keys=True).encode()
    return {"source": data.get("source"), "fingerprint": hashlib.sha256(content).hexdigest()[:16],
            "images": len(data.get("hashes", [])), "splits": {k: len(v) for k, v in data.get("splits", {}).items()},
            "duplicates": data.get("duplicates"), "dropped_by_dedup": len(data.get("dropped", []))}


def versions() -> dict[str, str | None]:
    """Installed versions of what made and runs the model."""
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {name: version(name) for name in VERSIONED} | {"python": sys.version.split()[0]}


def card_readme(card: dict[str, Any]) -> str:
    """The card for a person: intended use, the numbers with their intervals, and the threshold's limit."""
    point, test, est = card["operating_point"], card["test"], card["estimates"]
    low, high = point["recall_interval_95"]
    at = test.get("at_threshold") or {}
    lines = [
        f"# Model card: {card['summary']}",
        "",
        "## Intended use",
        f"Flags images of the class **{card['positive_class']}** (against {card['classes'][0]}) for a person to "
        f"review, at a threshold set so that about {point['target_recall']:.0%} of {card['positive_class']} images "
        "are flagged. It is a screening aid trained on one data set, not a diagnosis.",
        "",
        "## How to run it",
        f"- Input: {card['input']}.",
        f"- Positive when probability >= **{card['threshold']:.4f}** (`threshold` in model.json).",
        "- `python -m search.predict . <images> --out predictions.csv`, or in Python "
        "`Classifier.load(path).predict(images)`; or `model.onnx` with onnxruntime "
        "(input `images`, output `probability`).",
        "",
        "## The threshold and its promise",
        f"- Rule: {point['rule']}; set on {point['scores']} scores of {point['positives']} positive images, for "
        f"recall >= {point['target_recall']}.",
        f"- Expected recall on new positives drawn like those: {point['expected_recall']:.3f}; 95 % of calibration "
        f"draws give between {low:.3f} and {high:.3f}.",
        "",
        f"## Estimates ({est['on']}, {est['images']} images, {est['positives']} positive; 95 % bootstrap intervals)",
        "| metric | estimate | interval |",
        "|---|---|---|",
        *[f"| {k.replace('_', ' ')} | {v['estimate']:.3f} | {v['low']:.3f}-{v['high']:.3f} |"
          for k, v in est.items() if isinstance(v, dict)],
        "",
        f"## Test result (computed once: {test['images']} images, {test['positives']} positive)",
    ]
    if at:
        lines.append(f"- At the threshold: recall {at['test_recall']:.3f}, specificity {at['test_specificity']:.3f}, "
                     f"precision {at['test_precision']:.3f}; AUC {test['at_0.5']['test_auc']:.3f}.")
    if test.get("check"):
        lines.append(f"- {test['check']['words']}.")
    lines += [
        "",
        "## Limits",
        "- The threshold holds for images drawn like the ones it was set on. A new site, scanner or population "
        "shifts the scores: check it on labelled images from there before use, and set the threshold again there "
        "if recall falls short (on PneumoniaMNIST's official test split, a threshold set on train+val reached about "
        "half its recall target; docs/benchmarks.md).",
        f"- Trained on: {card['data']['source']} (fingerprint {card['data']['fingerprint']}).",
        "",
        f"Made by: `{card['command']['search'] or 'python -m search.run ...'}`, "
        f"exported by `{card['command']['export']}`.",
        "",
    ]
    return "\n".join(lines)


def export(experiment: str | Path, out: str | Path, *, command: str, onnx: bool = True) -> Path | Storage:
    """Write the delivered model of ``experiment`` (a folder, or a bucket's URI) to ``out`` (written whole, or not at all).

    ``out`` may be a bucket's URI: the folder is written here first, then uploaded file by file.
    """
    if is_remote(out):
        target = user_folder(out)
        if target.names():
            raise InputError(f"--out {str(target)!r} exists and is not empty; choose another folder")
        with tempfile.TemporaryDirectory(prefix="model.") as local:
            target.upload(export(experiment, Path(local) / "model", command=command, onnx=onnx))
        return target
    folder, out = user_folder(experiment), Path(out).expanduser()
    if not (folder / BEST_FILE).is_file():
        raise InputError(f"{str(folder)!r} holds no {BEST_FILE}: not a finished search.run experiment")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {str(out)!r} exists and is not empty; choose another folder")
    best = json.loads((folder / BEST_FILE).read_text())
    classifier = Classifier.from_experiment(folder)
    data = json.loads((folder / DATA_FILE).read_text()) if (folder / DATA_FILE).is_file() else None
    card = model_card(classifier, best, data, command=command)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        classifier.save(staging, card)
        if onnx:
            classifier.export_onnx(staging / ONNX_FILE)
        (staging / "README.md").write_text(card_readme(card))
        _readable_as_umask_allows(staging)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _readable_as_umask_allows(folder: Path) -> None:
    """mkdtemp and safetensors write owner-only: give the folder the modes a plain mkdir and open would."""
    mask = umask()
    folder.chmod(0o777 & ~mask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~mask)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.export", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="experiment folder written by search.run (or a bucket's URI, s3://...)")
    parser.add_argument("--out", required=True, help="the model folder to write (must not exist, or be empty; "
                        "or a bucket's URI)")
    parser.add_argument("--no-onnx", action="store_true", help="skip model.onnx (ONNX needs the [onnx] extra)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "search.export", *(sys.argv[1:] if argv is None else argv)])
    try:
        if not args.no_onnx:
            _require_onnx()
        out = export(args.experiment, args.out, command=command, onnx=not args.no_onnx)
    except InputError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    card = json.loads((out / CARD_FILE).read_text())
    print(f"model written to {out}: {card['summary']}, threshold {card['threshold']:.4f}")
    return 0


def _require_onnx() -> None:
    try:
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) needs it)
    except ImportError:
        raise InputError("ONNX export needs onnx and onnxscript: pip install 'rare-class-search[onnx]', "
                         "or pass --no-onnx") from None


if __name__ == "__main__":
    sys.exit(main())
