"""``--mlflow URI``: every trial, and the chosen model's test result, as runs of an MLflow experiment named ``--name``.

Trials go through Ray's own ``MLflowLoggerCallback`` (a run per trial: the
config as params, every report as metrics with the epoch as step, the kept
state's ``kept_*`` among them), with two changes: a result is one batch
request, not one per metric (about 80 here); and a trial that ``--resume``
continues logs into the run it had (Tune restores this callback with the
experiment; trials that had finished never start again, so they get no second
run). After the search, :func:`log_chosen` adds one run, ``chosen``, with
``best.json``'s test result, threshold and config, and ``best.json`` itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.utils import flatten_dict

from trainables import InputError
from trainables.ray_compat import mlflow_trial_runs

INSTALL = "pip install 'rare-class-search[mlflow]'"
CHOSEN = "chosen"  # the run name, and the value of the ROLE tag, of the delivered model's run
ROLE = "rare_class_search.role"
CHECK_TIMEOUT_S = 5


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_tracking_uri(uri: str) -> None:
    """InputError (one line) when MLflow is not installed or nothing answers at ``uri``: before any trial starts."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise InputError(f"--mlflow needs MLflow, which is not installed here: {INSTALL}") from None
    if not uri.strip():
        raise InputError("--mlflow needs a tracking URI, e.g. http://127.0.0.1:5000")
    with _no_retries():
        try:
            _client(uri).search_experiments(max_results=1)
        except Exception as err:  # MlflowException, requests' errors, a bad scheme: all mean "not usable"
            raise InputError(f"--mlflow {uri!r}: no MLflow tracking server answers there ({_reason(err)}); start "
                             "one (mlflow server --host 127.0.0.1 --port 5000) or fix the URI") from None


@contextlib.contextmanager
def _no_retries() -> Iterator[None]:
    """MLflow's HTTP client retries a refused connection for minutes by default; the check asks once."""
    names = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CHECK_TIMEOUT_S)}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reason(err: Exception) -> str:
    """The cause of a failed request in a few words (MLflow's message nests the whole urllib3 trace)."""
    text = str(err)
    found = re.findall(r"\[Errno -?\d+\] [^'\")]+", text)
    return found[-1].strip() if found else (text.splitlines() or [type(err).__name__])[0][:160]


class TrialRuns(MLflowLoggerCallback):
    """Ray's MLflow logger: one batch request per result, and a resumed trial back in its own run."""

    def setup(self, *args: Any, **kwargs: Any) -> None:
        # MLflow prints two lines ("View run ...") each time a run ends; log_chosen prints one line at the end.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        super().setup(*args, **kwargs)
        self._client = _client(self.tracking_uri)
        self._experiment_id = self._client.get_experiment_by_name(self.experiment_name).experiment_id

    def log_trial_start(self, trial: Any) -> None:
        runs = mlflow_trial_runs(self)
        if trial not in runs:  # a trial interrupted earlier has a run already, tagged with its name by Ray
            found = self._client.search_runs([self._experiment_id], f"tags.trial_name = '{trial}'", max_results=1)
            if found:
                runs[trial] = found[0].info.run_id
                self._client.update_run(runs[trial], status="RUNNING")
        super().log_trial_start(trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        from mlflow.entities import Metric

        step = int(result["training_iteration"])  # train_fn reports the epoch there
        metrics = [Metric(key, value, int(result.get("timestamp") or time.time()) * 1000, step)
                   for key, value in _numbers(flatten_dict(result)).items()]
        self._client.log_batch(mlflow_trial_runs(self)[trial], metrics=metrics)


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The values MLflow can take as metrics (as Ray's logger keeps them: whatever float() takes)."""
    kept = {}
    for key, value in values.items():
        try:
            kept[key] = float(value)
        except (TypeError, ValueError):
            continue
    return kept


def tracking_callbacks(uri: str | None, *, experiment: str) -> list[TrialRuns]:
    """The Tune callbacks of ``--mlflow``: none without it."""
    return [] if uri is None else [TrialRuns(tracking_uri=uri, experiment_name=experiment)]


def log_chosen(uri: str, *, experiment: str, best: dict[str, Any], best_file: Any) -> str | None:
    """The run ``chosen``: the delivered model's config, threshold and test result, with ``best`` as best.json; its id.

    A run ``chosen`` that an earlier delivery of the same experiment left (a
    ``--resume`` of a finished search delivers again) is deleted first. A
    failure is a warning: ``best.json`` is written already.
    """
    from mlflow.entities import Metric, Param, RunTag

    try:
        client = _client(uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        for old in client.search_runs([experiment_id], f"tags.`{ROLE}` = '{CHOSEN}'"):
            client.delete_run(old.info.run_id)
        members = best.get("deliverable", {}).get("members", [])
        tags = {ROLE: CHOSEN, "chosen_trial": ",".join(str(m.get("trial")) for m in members)}
        run = client.create_run(experiment_id, run_name=CHOSEN, tags=tags)
        point = best.get("operating_point", {})
        metrics = {"operating_threshold": point.get("threshold"),
                   **flatten_dict({k: best[k] for k in ("test", "test_at_operating_threshold") if k in best})}
        params = {**flatten_dict(best.get("config", {})), **flatten_dict({"operating_point": point})}
        client.log_batch(run.info.run_id,
                         metrics=[Metric(k, v, int(time.time() * 1000), 0) for k, v in _numbers(metrics).items()],
                         params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag("best_json", str(best_file))])
        client.log_dict(run.info.run_id, best, "best.json")  # best_file may be on a bucket
        client.set_terminated(run.info.run_id)
    except Exception as err:  # the search's results are on disk; the tracker only misses this run
        print(f"python -m search.run: warning: could not log the chosen model to MLflow at {uri!r} "
              f"({_reason(err)}); {best_file} has it", file=sys.stderr)
        return None
    where = f" ({uri.rstrip('/')}/#/experiments/{experiment_id})" if uri.startswith(("http://", "https://")) else ""
    print(f"MLflow: experiment {experiment!r} at {uri}{where}: a run per trial, and {CHOSEN!r} for the delivered model.")
    return run.info.run_id
