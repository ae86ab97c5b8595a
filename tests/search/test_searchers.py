"""Optuna as Tune's searcher: no configuration twice, brute force on a small space, trials asked as they can run."""

import dataclasses

import optuna
from ray import tune
from ray.tune.search import Searcher

from search.searchers import DistinctOptunaSearch, concurrent_trials, optuna as optuna_searcher
from search.spaces import get_space
from search.tuner import SearchSettings
from trainables.ray_compat import optuna_study

SPACE = {"architecture": tune.choice(["cnn", "cnn_bn"]),
         "strategy": tune.choice(["none", "weighted_loss", "oversampling", "both"])}


def _searcher(sampler):
    from ray.tune.search.optuna import OptunaSearch

    searcher = DistinctOptunaSearch(sampler=sampler)
    searcher.set_search_properties("objective", "max", {k: v for k, v in SPACE.items()})
    assert isinstance(searcher, OptunaSearch)
    return searcher


def test_tpe_never_suggests_a_configuration_twice_and_stops_when_the_space_is_spent():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    seen = []
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        seen.append((config["architecture"], config["strategy"]))
        searcher.on_trial_result(f"t{i}", {"objective": 0.1 * i, "training_iteration": 1})
        searcher.on_trial_complete(f"t{i}", {"objective": 0.1 * i, "training_iteration": 1})
    assert len(set(seen)) == 8  # every combination once, where plain TPE repeats itself
    assert searcher.suggest("t8") == Searcher.FINISHED
    assert searcher.repeats_refused > 0
    states = [t.state for t in optuna_study(searcher).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 8  # the repeats are FAIL, which TPE ignores


def _settings(**changes):
    return dataclasses.replace(SearchSettings(space=get_space("quick"), name="x", storage_path="/tmp", search="optuna",
                                              num_samples=4), **changes)


def test_a_space_no_larger_than_the_samples_is_run_once_each_by_brute_force():
    assert isinstance(optuna_searcher(_settings(num_samples=8))._sampler, optuna.samplers.BruteForceSampler)
    assert isinstance(optuna_searcher(_settings(num_samples=4))._sampler, optuna.samplers.TPESampler)


def test_optuna_asks_only_for_trials_that_can_start():
    assert concurrent_trials(_settings(), cluster_cpus=2) == 2
    assert concurrent_trials(_settings(cpus_per_trial=2.0), cluster_cpus=8) == 4
    assert concurrent_trials(_settings(max_concurrent_trials=3), cluster_cpus=8) == 3
    assert concurrent_trials(_settings(search="grid"), cluster_cpus=8) is None
