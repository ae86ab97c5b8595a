"""The report of the session's smoke experiment (tests/conftest.py), shared by the analysis tests."""

import pytest

from analysis import build_report


@pytest.fixture(scope="session")
def smoke_report(smoke_experiment, tmp_path_factory):
    return build_report(str(smoke_experiment), out_dir=tmp_path_factory.mktemp("report"), resamples=200)
