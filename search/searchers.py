"""Optuna as Tune's searcher: seeded, never the same configuration twice, at most N trials asked ahead.

Tune's ``OptunaSearch`` asks the sampler for every new trial, and TPE may
propose a configuration it has already run (optuna/optuna#2021): on a finite
space, ``--space quick --num-samples 8`` ran 4 distinct configurations, and
the leaderboard showed one three times. :class:`DistinctOptunaSearch` asks
again instead, telling Optuna that the repeat failed, so that no
configuration runs twice in one search. A space with no more combinations than
``--num-samples`` is run once each, by Optuna's ``BruteForceSampler``.

The study it leaves (``--storage``) holds every epoch of every trial as an
intermediate value, the last included, and each trial's Ray trial id.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from ray.tune.result import TRAINING_ITERATION
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Domain

from trainables.ray_compat import optuna_study, optuna_trial

if TYPE_CHECKING:
    from search.tuner import SearchSettings

ATTEMPTS = 100  # asks per new trial before the search is called exhausted
ASKS_BEFORE_RANDOM = 3  # repeats after which a configuration not yet run is enqueued


def _signature(config: dict) -> str:
    """A configuration as one comparable string, whatever its keys' order."""
    return json.dumps(config, sort_keys=True, default=str)


class DistinctOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that never suggests a configuration it suggested before in this search.

    A repeat is told to Optuna as failed (TPE leaves failed trials out of its
    model) and asked again. TPE that has settled on one point proposes it
    again and again, so after :data:`ASKS_BEFORE_RANDOM` repeats a random
    configuration not yet run is enqueued for the next ask, where the space
    is finite (every dimension a choice).
    """

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._asked: dict[str, str] = {}  # Tune's trial id -> the Optuna trial's key in OptunaSearch
        self._seen: set[str] = set()
        self._choices: dict[str, list] | None = None  # each dimension's values, for a finite space
        self._rng = random.Random(seed)
        self._last_step: dict[str, int] = {}  # the Optuna trial's key -> the last epoch reported to it
        self._completed: set[str] = set()
        self.repeats_refused = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        choices = {k: v.categories for k, v in config.items() if isinstance(v, Categorical)}
        domains = [v for v in config.values() if isinstance(v, Domain)]
        self._choices = choices if len(choices) == len(domains) else None
        return super().set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | None:
        for attempt in range(ATTEMPTS):
            key = trial_id if attempt == 0 else f"{trial_id}-repeat-{attempt}"
            if attempt == ASKS_BEFORE_RANDOM and (unseen := self._random_unseen()) is not None:
                optuna_study(self).enqueue_trial(unseen)
            config = super().suggest(key)
            if not isinstance(config, dict):
                return config
            signature = _signature(config)
            if signature not in self._seen:
                self._seen.add(signature)
                self._asked[trial_id] = key
                optuna_trial(self, key).set_user_attr("ray_trial_id", trial_id)  # to find it in trials.csv
                return config
            super().on_trial_complete(key, result=None, error=True)  # FAIL in the study: TPE ignores it
            self.repeats_refused += 1
        return Searcher.FINISHED  # every ask repeated a configuration: the space is spent

    def _random_unseen(self) -> dict | None:
        """A random configuration of a finite space that has not run yet (None: none found, or not finite)."""
        if not self._choices:
            return None
        for _ in range(1000):
            config = {k: self._rng.choice(v) for k, v in self._choices.items()}
            if _signature(config) not in self._seen:
                return config
        return None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        key = self._asked.get(trial_id, trial_id)
        super().on_trial_result(key, result)
        self._last_step[key] = result[TRAINING_ITERATION]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self._asked.get(trial_id, trial_id)
        # Tune hands a trial's last result (its last epoch, or the rung where ASHA stopped it) to
        # on_trial_complete alone (TuneController._process_trial_result): without this report the study
        # missed it, and a trial stopped at the first rung had no intermediate value at all.
        if (not error and result and self.metric in result and key not in self._completed
                and result.get(TRAINING_ITERATION, 0) > self._last_step.get(key, 0)):
            super().on_trial_result(key, result)
        self._completed.add(key)
        super().on_trial_complete(key, result=result, error=error)


def optuna(settings: SearchSettings) -> Searcher:
    """Optuna over the space's values, seeded: TPE, or brute force when the space is no larger than the samples.

    Tune wraps it in its ``ConcurrencyLimiter`` (``TuneConfig.max_concurrent_trials``,
    :func:`concurrent_trials`), so that the sampler proposes no more trials than run at once.
    """
    import optuna as _optuna

    storage = {}
    if settings.optuna_storage:
        # Ray's OptunaSearch takes a storage object, not a URL; the study is created
        # there (or reopened: load_if_exists) so that optuna-dashboard can open it.
        storage = {"storage": _optuna.storages.RDBStorage(settings.optuna_storage),
                   "study_name": settings.study_name or settings.name}
    every = settings.num_samples >= settings.space.num_grid_trials
    sampler = (_optuna.samplers.BruteForceSampler(seed=settings.seed) if every
               else _optuna.samplers.TPESampler(seed=settings.seed))
    return DistinctOptunaSearch(sampler=sampler, seed=settings.seed, **storage)


def trials_in_study(storage: str, study_name: str) -> int:
    """How many trials the study ``study_name`` in the Optuna storage URL ``storage`` holds (0: no such study)."""
    import optuna as _optuna

    summaries = _optuna.study.get_all_study_summaries(storage, include_best_trial=False)
    return next((s.n_trials for s in summaries if s.study_name == study_name), 0)


def concurrent_trials(settings: SearchSettings, *, cluster_cpus: float) -> int | None:
    """``--max-concurrent-trials``; for Optuna without it, the trials the cluster's CPUs run at once.

    Without a limit Tune asks a searcher for up to 16 pending trials ahead of
    any result, all drawn blind; with it, Optuna proposes a trial when one can start.
    """
    if settings.max_concurrent_trials or settings.search != "optuna":
        return settings.max_concurrent_trials
    return max(1, int(cluster_cpus // settings.cpus_per_trial))
