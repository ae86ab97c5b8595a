"""Search spaces, Ray Tune set-up and the ``python -m search.run`` command line."""

from search.results import OBJECTIVE, leaderboard, rank_trials, trials_frame, write_csv_atomically
from search.retention import WeightRetention, weights_to_keep
from search.spaces import Space, get_space, list_spaces, register_space, validate_space
from search.tuner import SCHEDULERS, SEARCH_METRIC, SEARCHERS, SearchSettings, build_tuner, param_space

__all__ = [
    "OBJECTIVE", "SCHEDULERS", "SEARCH_METRIC", "SEARCHERS", "SearchSettings", "Space", "build_tuner",
    "get_space", "leaderboard", "list_spaces", "param_space", "rank_trials", "register_space", "trials_frame",
    "validate_space", "WeightRetention", "weights_to_keep", "write_csv_atomically",
]
