"""Search spaces, Ray Tune set-up and the command lines: ``search.run``, ``search.export``, ``search.predict``.

Names are imported on first use, so that ``search.predict`` and
``search.export`` run without importing Ray.
"""

from importlib import import_module

_WHERE = {
    "OBJECTIVE": "search.results", "leaderboard": "search.results", "rank_trials": "search.results",
    "trials_frame": "search.results", "write_csv_atomically": "search.results",
    "WeightRetention": "search.retention", "weights_to_keep": "search.retention",
    "Space": "search.spaces", "get_space": "search.spaces", "list_spaces": "search.spaces",
    "register_space": "search.spaces", "validate_space": "search.spaces",
    "SCHEDULERS": "search.tuner", "SEARCH_METRIC": "search.tuner", "SEARCHERS": "search.tuner",
    "SearchSettings": "search.tuner", "build_tuner": "search.tuner", "param_space": "search.tuner",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
