"""One real smoke experiment and its report, shared by the analysis tests of a session."""

import pytest

from analysis import build_report
from search.run import build_parser, data_options, prepare_inputs, run, settings_from_args


@pytest.fixture(scope="session")
def smoke_experiment(ray_session, tmp_path_factory):
    storage = tmp_path_factory.mktemp("results")
    args = build_parser().parse_args(["--space", "smoke", "--storage-path", str(storage), "--name", "exp",
                                      "--image-size", "16", "--max-epochs", "2"])
    settings = settings_from_args(args)
    datasets, states, size = prepare_inputs(settings, args)
    return run(settings, datasets=datasets, imagenet_states=states, source_image_size=size,
               data_options=data_options(args))


@pytest.fixture(scope="session")
def smoke_report(smoke_experiment, tmp_path_factory):
    return build_report(str(smoke_experiment), out_dir=tmp_path_factory.mktemp("report"), resamples=200)
