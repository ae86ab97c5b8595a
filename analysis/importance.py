"""Which dimension of the space mattered for the objective: Optuna's importance evaluators on finished trials.

The trials of any search (grid, ASHA, Optuna) are copied into an in-memory
Optuna study with :func:`optuna.trial.create_trial`, one categorical
distribution per varied ``config/`` column, and scored by an importance
evaluator: fANOVA (Hutter et al., ICML 2014; a random forest's variance
decomposition, the default) or PED-ANOVA (Watanabe et al., IJCAI 2023; which
dimension's values separate the top trials from the rest). Importances are
normalised to sum to 1. With a few trials they are rough: a random forest
on 8 points, or a top quantile of one or two trials.

>>> importance = dimension_importance(load_trials("results/quick-..."))   # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pandas as pd

from analysis.tables import require_columns

EVALUATORS = ("fanova", "ped_anova", "mean_decrease_impurity")


def varied_dimensions(trials: pd.DataFrame) -> list[str]:
    """``config/`` columns whose values differ between trials: the dimensions a search varied."""
    return [c for c in trials if c.startswith("config/") and trials[c].astype(str).nunique(dropna=False) > 1]


def make_evaluator(name: str, *, seed: int = 0) -> optuna.importance.BaseImportanceEvaluator:
    """Optuna's importance evaluator called ``name`` (see :data:`EVALUATORS`), seeded where it draws."""
    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    if name == "ped_anova":
        return optuna.importance.PedAnovaImportanceEvaluator()
    if name == "mean_decrease_impurity":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)
    raise ValueError(f"unknown importance evaluator {name!r}; choose from {', '.join(EVALUATORS)}")


def trials_as_study(trials: pd.DataFrame, *, objective: str = "objective", mode: str = "max",
                    dimensions: list[str] | None = None) -> optuna.Study:
    """An in-memory Optuna study holding one finished trial per row with an objective.

    Every dimension is categorical (a grid's values, or Optuna's choices), its
    choices the values the trials took, so numbers (lr) and booleans (augment) work alike.
    """
    require_columns(trials, [objective])
    dimensions = varied_dimensions(trials) if dimensions is None else dimensions
    scored = trials.dropna(subset=[objective])
    distributions = {c.removeprefix("config/"): optuna.distributions.CategoricalDistribution(
        sorted({_plain(v) for v in scored[c]}, key=str)) for c in dimensions}
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" per call
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(previous)
    for _, row in scored.iterrows():
        params = {c.removeprefix("config/"): _plain(row[c]) for c in dimensions}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                  value=float(row[objective])))
    return study


def dimension_importance(trials: pd.DataFrame, *, objective: str = "objective", mode: str = "max",
                         evaluator: str = "fanova", seed: int = 0) -> pd.DataFrame:
    """Importance of each varied dimension for ``objective``, most important first.

    Columns: ``dimension``, ``importance`` (normalised, sums to 1), ``values``
    (how many values it took). Empty when fewer than two trials finished or
    the search varied nothing.

    The guarded objective is used as the search ranked trials: a dimension
    whose values decide whether a model passes the degenerate-model guard
    (e.g. a strategy that makes every model call everything positive) shows
    as important, which is what a reader choosing a configuration needs.
    """
    dimensions = varied_dimensions(trials)
    scored = trials.dropna(subset=[objective]) if objective in trials else trials.head(0)
    empty = pd.DataFrame(columns=["dimension", "importance", "values"])
    if len(scored) < 2 or not dimensions:
        return empty
    if scored[objective].nunique() < 2:  # a constant objective: nothing to explain, every dimension 0
        return pd.DataFrame({"dimension": [c.removeprefix("config/") for c in dimensions], "importance": 0.0,
                             "values": [scored[c].astype(str).nunique() for c in dimensions]})
    study = trials_as_study(scored, objective=objective, mode=mode, dimensions=dimensions)
    importances = optuna.importance.get_param_importances(study, evaluator=make_evaluator(evaluator, seed=seed),
                                                          normalize=True)
    rows = [{"dimension": name, "importance": float(value),
             "values": scored[f"config/{name}"].astype(str).nunique()} for name, value in importances.items()]
    frame = pd.DataFrame(rows)
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _plain(value: Any) -> Any:
    """A value Optuna's categorical distribution takes: numpy scalars become Python ones; NaN becomes None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
