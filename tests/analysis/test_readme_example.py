"""The docs' notebook example (docs/results.md, linked from the README) runs as written on a real experiment."""

import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

README = Path(__file__).resolve().parents[2] / "docs" / "results.md"  # the README links to it


def readme_example() -> str:
    """The Python block after the ``<!-- notebook example -->`` marker."""
    text = README.read_text()
    match = re.search(r"<!-- notebook example -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"{README} lost its notebook example"
    return match.group(1)


def test_readme_notebook_example_runs(smoke_experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves a PNG in the working folder
    code = readme_example().replace('"results/<name>"', repr(str(smoke_experiment)))
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert isinstance(namespace["importance"], pd.DataFrame) and len(namespace["trials"]) == 4
    assert isinstance(namespace["fig"], Figure) and (tmp_path / "all_trials.png").stat().st_size > 1000
