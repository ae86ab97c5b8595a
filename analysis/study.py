"""Figures of a whole search that answer the study's question: which strategy helps, for which architecture.

Every function takes the DataFrames of :func:`analysis.load_trials` (or
tables built from them) and returns a DataFrame or a matplotlib Figure;
nothing here reads files or touches Ray, so they work in a notebook::

    trials = load_trials("results/quick-...")
    parallel_coordinates_figure(trials)
    strategy_panel_figure(best_cells(trials))
    pareto_figure(trials)
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from analysis.importance import varied_dimensions  # noqa: E402
from analysis.tables import require_columns  # noqa: E402
from search.results import rank_trials  # noqa: E402

STRATEGY, ARCHITECTURE = "config/strategy", "config/architecture"
STRATEGY_ORDER = ("none", "weighted_loss", "oversampling", "both")  # the study's order: none, then each remedy
MARKERS = "osD^vP*X"
GUARD_ROW = -0.12  # where guard failures sit below the objective axis of the parallel coordinates


def ordered_values(values: Sequence, *, order: Sequence = ()) -> list:
    """Distinct values, those of ``order`` first in its order, the rest sorted (numbers numerically)."""
    distinct = list(dict.fromkeys(values))
    known = [v for v in order if v in distinct]
    rest = [v for v in distinct if v not in known]
    try:
        rest = sorted(rest)
    except TypeError:  # mixed types: sort by their text
        rest = sorted(rest, key=str)
    return known + rest


def best_cells(trials: pd.DataFrame, *, metric: str = "kept_val_recall", mode: str = "max",
               rows: str = STRATEGY, cols: str = ARCHITECTURE) -> pd.DataFrame:
    """The best trial of each strategy x architecture cell, ranked as the search ranks (objective, then ties).

    Columns: the two keys, ``trial_id``, ``objective``, ``guard_passed`` and
    ``estimate`` (the trial's ``metric`` on validation). Add ``low`` and
    ``high`` to draw intervals (:func:`analysis.tables.bootstrap_metric`).
    """
    require_columns(trials, [rows, cols, metric, "objective"])
    ranked = rank_trials(trials.dropna(subset=["objective"]), mode=mode)
    best = ranked.groupby([cols, rows], sort=False).head(1)
    keep = [cols, rows, "trial_id", "objective", *(["guard_passed"] if "guard_passed" in best else [])]
    cells = best[keep].assign(estimate=best[metric].astype(float))
    return cells.sort_values([cols, rows], kind="stable").reset_index(drop=True)


def strategy_panel_figure(cells: pd.DataFrame, *, metric_label: str = "validation recall",
                          rows: str = STRATEGY, cols: str = ARCHITECTURE, title: str | None = None) -> Figure:
    """Strategy (x) x architecture (series): the best trial's validation estimate, with its interval if given.

    A cell whose best trial fails the degenerate-model guard is drawn as a
    red cross and labelled, so that a high recall of a model that calls
    everything positive is not read as a success.
    """
    require_columns(cells, [rows, cols, "estimate"], what="cells")
    strategies = ordered_values(cells[rows], order=STRATEGY_ORDER)
    architectures = ordered_values(cells[cols])
    width = 0.7 / max(len(architectures), 1)
    fig, ax = plt.subplots(figsize=(max(4.8, 1.3 * len(strategies) + 2), 3.8))
    for k, architecture in enumerate(architectures):
        group = cells[cells[cols] == architecture]
        x = np.array([strategies.index(s) for s in group[rows]]) + (k - (len(architectures) - 1) / 2) * width
        y = group["estimate"].to_numpy(float)
        failed = (group["guard_passed"] == False).to_numpy() if "guard_passed" in group else np.zeros(len(group), bool)  # noqa: E712
        if {"low", "high"} <= set(group.columns):
            err = np.vstack([y - group["low"].to_numpy(float), group["high"].to_numpy(float) - y])
            ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="none", ecolor=f"C{k}", capsize=3, linewidth=1)
        ax.plot(x[~failed], y[~failed], MARKERS[k % len(MARKERS)], color=f"C{k}", label=str(architecture),
                markersize=7, linestyle="none")
        if failed.any():
            ax.plot(x[failed], y[failed], "x", color="tab:red", markersize=9, mew=2, linestyle="none")
            for xi, yi in zip(x[failed], y[failed], strict=True):
                ax.annotate("failed guard", (xi, yi), textcoords="offset points", xytext=(0, -14), ha="center",
                            fontsize=7, color="tab:red")
    ax.set_xticks(range(len(strategies)), [str(s) for s in strategies])
    ax.set_xlabel("strategy")
    ax.set_ylabel(metric_label)
    lows = cells["low"] if "low" in cells else cells["estimate"]
    ax.set_ylim(_lower_limit(pd.concat([cells["estimate"], lows])), 1.03)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="architecture", fontsize=8, title_fontsize=8, loc="lower right")
    ax.set_title(title or f"best trial per strategy x architecture: {metric_label}", fontsize=10)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.DataFrame, *, title: str = "importance of each dimension for the objective") -> Figure:
    """Horizontal bars of :func:`analysis.importance.dimension_importance`, most important on top."""
    require_columns(importance, ["dimension", "importance"], what="importance")
    fig, ax = plt.subplots(figsize=(5.2, 0.45 * max(len(importance), 1) + 1.2))
    ordered = importance.iloc[::-1]
    ax.barh(ordered["dimension"].astype(str), ordered["importance"], color="tab:blue")
    for y, value in enumerate(ordered["importance"]):
        ax.text(value + 0.01, y, f"{value:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("share of the objective's variance (normalised)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def parallel_coordinates_figure(trials: pd.DataFrame, *, objective: str = "objective",
                                dimensions: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """One line per trial through each varied dimension's value, ending at its objective.

    Dimensions (``config/`` columns; default: those the search varied, in
    the order given, e.g. by importance) are categorical axes; lines are
    coloured by objective. Trials that failed the guard or diverged end on a
    row below the objective axis, in grey, instead of at -1 or -inf.
    """
    require_columns(trials, [objective])
    dims = list(dimensions) if dimensions is not None else varied_dimensions(trials)
    scored = trials.dropna(subset=[objective]).reset_index(drop=True)
    failed = (scored["guard_passed"] == False).to_numpy() if "guard_passed" in scored else scored[objective].lt(-0.5).to_numpy()  # noqa: E712
    values = scored[objective].to_numpy(float)
    failed = failed | ~np.isfinite(values)  # a diverged trial's -inf sits on the same row, not on the axis
    passing = values[~failed]
    low, high = (passing.min(), passing.max()) if len(passing) else (0.0, 1.0)
    span = high - low if high > low else 1.0
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 * (len(dims) + 1)), 4.2))
    positions = {}
    for d in dims:
        levels = ordered_values(scored[d], order=STRATEGY_ORDER if d == STRATEGY else ())
        positions[d] = {v: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, v in enumerate(levels)}
    # A small spread keeps trials that share a value from hiding each other's lines.
    jitter = (np.arange(len(scored)) - (len(scored) - 1) / 2) * (0.03 / max(len(scored), 1))
    cmap = plt.get_cmap("viridis")
    for i, row in scored.iterrows():
        ys = [positions[d][row[d]] + jitter[i] for d in dims]
        ys.append(GUARD_ROW if failed[i] else (values[i] - low) / span)
        color = "0.6" if failed[i] else cmap((values[i] - low) / span)
        ax.plot(range(len(dims) + 1), ys, color=color, alpha=0.8, linewidth=1.3,
                linestyle="--" if failed[i] else "-", marker=".")
    for x, d in enumerate(dims):
        ax.axvline(x, color="0.3", linewidth=0.8)
        for value, y in positions[d].items():
            ax.text(x + 0.04, y, str(value), fontsize=7, va="center", ha="left",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    x_obj = len(dims)
    ax.axvline(x_obj, color="0.3", linewidth=0.8)
    for fraction in (0, 0.5, 1):
        ax.text(x_obj + 0.04, fraction, f"{low + fraction * span:.3f}", fontsize=7, va="center")
    if failed.any():
        ax.text(x_obj + 0.04, GUARD_ROW, "failed guard / diverged", fontsize=7, va="center", color="0.4")
    ax.set_xticks(range(len(dims) + 1), [d.removeprefix("config/") for d in dims] + [objective])
    ax.set_yticks([])
    ax.set_xlim(-0.2, x_obj + 0.6)
    ax.set_ylim(GUARD_ROW - 0.08, 1.08)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(low, high))
    fig.colorbar(sm, ax=ax, pad=0.01, fraction=0.04).set_label(objective, fontsize=8)
    ax.set_title(title or "configurations and their objective (one line per trial)", fontsize=10)
    fig.tight_layout()
    return fig


def pareto_front(trials: pd.DataFrame, *, x: str = "kept_val_recall", y: str = "kept_val_precision") -> pd.Series:
    """True for trials no other trial beats on both ``x`` and ``y`` (higher is better on both)."""
    require_columns(trials, [x, y])
    points = trials[[x, y]].to_numpy(float)
    valid = ~np.isnan(points).any(axis=1)
    front = np.zeros(len(points), dtype=bool)
    for i in np.flatnonzero(valid):
        others = points[valid]
        dominated = ((others >= points[i]).all(axis=1) & (others > points[i]).any(axis=1)).any()
        front[i] = not dominated
    return pd.Series(front, index=trials.index, name="pareto")


def pareto_figure(trials: pd.DataFrame, *, x: str = "kept_val_recall", y: str = "kept_val_precision",
                  title: str = "validation recall vs precision; line: Pareto front") -> Figure:
    """Every trial's validation recall and precision, by strategy (colour) and architecture (marker).

    The Pareto front joins the trials no other beats on both; a hollow marker
    is a trial that failed the degenerate-model guard.
    """
    require_columns(trials, [x, y])
    front = pareto_front(trials, x=x, y=y)
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    strategies = ordered_values(trials[STRATEGY], order=STRATEGY_ORDER) if STRATEGY in trials else [None]
    architectures = ordered_values(trials[ARCHITECTURE]) if ARCHITECTURE in trials else [None]
    failed = trials["guard_passed"] == False if "guard_passed" in trials else pd.Series(False, index=trials.index)  # noqa: E712
    for i, row in trials.iterrows():
        color = f"C{strategies.index(row[STRATEGY]) if STRATEGY in trials else 0}"
        marker = MARKERS[architectures.index(row[ARCHITECTURE]) % len(MARKERS)] if ARCHITECTURE in trials else "o"
        ax.plot(row[x], row[y], marker, color=color, markersize=7, alpha=0.85,
                markerfacecolor="none" if failed[i] else color)
    on_front = trials[front].sort_values(x)
    ax.plot(on_front[x], on_front[y], color="0.2", linewidth=1, zorder=0, drawstyle="steps-post")
    handles = [Line2D([], [], color=f"C{k}", marker="o", linestyle="none", label=str(s))
               for k, s in enumerate(strategies) if s is not None]
    handles += [Line2D([], [], color="0.3", marker=MARKERS[k % len(MARKERS)], linestyle="none", label=str(a))
                for k, a in enumerate(architectures) if a is not None]
    if failed.any():
        handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="none",
                              label="failed guard"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_xlabel(x.replace("kept_val_", "validation ").replace("_", " "))
    ax.set_ylabel(y.replace("kept_val_", "validation ").replace("_", " "))
    ax.set_xlim(_lower_limit(trials[x]), 1.02)
    ax.set_ylim(_lower_limit(trials[y]), 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _lower_limit(values: pd.Series, *, margin: float = 0.05) -> float:
    """An axis that starts a little below the lowest value, at 0 at most: close values stay apart."""
    lowest = float(np.nanmin(values.to_numpy(float))) if len(values) and values.notna().any() else 0.0
    return min(max(0.0, lowest - margin), 0.9) if lowest >= 0 else lowest - margin


def validation_vs_test_figure(frame: pd.DataFrame, *, title: str = "validation estimate vs test result") -> Figure:
    """Per chosen model and metric, the validation estimate beside the test result, with their intervals.

    ``frame`` has one row per model, metric and split: ``model``, ``metric``,
    ``split`` (validation or test), ``estimate``, ``low``, ``high``, as
    :func:`analysis.reporting.validation_vs_test` builds it.
    """
    require_columns(frame, ["model", "metric", "split", "estimate", "low", "high"], what="validation vs test")
    metrics = list(dict.fromkeys(frame["metric"]))
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 1.6, 0.55 * len(models) + 1.6),
                             sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for offset, split, marker, color in ((0.15, "validation", "o", "tab:blue"), (-0.15, "test", "s", "tab:orange")):
            part = frame[(frame["metric"] == metric) & (frame["split"] == split)]
            ys = np.array([models.index(m) for m in part["model"]]) + offset
            est = part["estimate"].to_numpy(float)
            err = np.clip(np.vstack([est - part["low"].to_numpy(float), part["high"].to_numpy(float) - est]), 0, None)
            ax.errorbar(est, ys, xerr=err, fmt=marker, color=color, capsize=2, markersize=5,
                        label=split if metric == metrics[0] else None)
        ax.set_title(metric, fontsize=9)
        ax.set_xlim(-0.02, 1.02)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(models)), models)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title + " (95 % bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    return fig
