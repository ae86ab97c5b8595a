"""Which configurations the data can tell apart: paired comparisons of finished trials on the same held-out images.

Every trial leaves each of its models' scores on its own held-out images
(``held_out.pt``: its fold's images, else the validation split; one model
per seed and fold). Two trials of one experiment were judged on the same
images, so they are compared image by image: a paired, stratified bootstrap
draws the held-out images of every (seed, fold) unit again, the same draw for
both trials, and recomputes the ranking metric's mean over units for each.
The difference's percentile interval and two-sided p-value follow
(trainables.uncertainty). This is the uncertainty of the leaderboard's
order: on a small set, most of it is noise.

- **Ties with the best.** The best-ranked trial is compared with each of the
  next :data:`TIE_CANDIDATES` that passed the guard; those whose difference's
  95 % interval holds 0 are tied with it.
- **The choice among ties** follows ``--on-ties`` (:data:`TIE_RULES`):
  ``best`` (default) delivers the leaderboard's first; ``cheapest`` the tied
  trial with the fewest parameters, then the fewest training epochs, as
  nnU-Net prefers the simpler of equals. On a small real set the tie test
  has little power: on one pneumoniamnist draw of 546 training images,
  ``cheapest`` delivered a CNN whose specificity at 0.9 recall on 5,076
  unseen images was 0.915, against the leaderboard's first's 0.966
  (docs/benchmarks.md), so it is opt-in. Only trials whose weights the
  search kept (``--keep-weights``, search.retention) can be delivered.
- **Strategy effects.** For the study's question, per architecture, the best
  trial of each imbalance strategy against the best trial of ``none``.

The search writes the record to ``comparisons.json``; the CLI's last lines
and the report read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from search.results import OBJECTIVE
from trainables.checkpoints import read_held_out
from trainables.uncertainty import Difference, paired_difference, resampled_mean, unit_resamples

COMPARISONS_FILE = "comparisons.json"
DRAWS = 1000  # bootstrap draws per comparison: p-values down to 0.002
TIE_CANDIDATES = 20  # the trials after the best that are tested for a tie with it
CONFIDENCE = 0.95
BASELINE_STRATEGY = "none"


@dataclass(frozen=True)
class HeldOut:
    """One trial's held-out scores: per unit (seed, fold), the labels and the positive-class probabilities."""

    units: tuple[tuple[int, int], ...]
    scores: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def images(self) -> int:
        return sum(len(y) for y, _ in self.scores)

    def pairs_with(self, other: "HeldOut") -> bool:
        """Whether both were scored on the same units and images (same seeds, folds and labels in order)."""
        return self.units == other.units and all(
            np.array_equal(a, b) for (a, _), (b, _) in zip(self.scores, other.scores, strict=True))


def held_out_of(checkpoint: Any) -> HeldOut | None:
    """The :class:`HeldOut` in a trial's (Ray) checkpoint, on any storage; None without one."""
    if checkpoint is None:
        return None
    record = read_held_out(checkpoint.filesystem, checkpoint.path)
    if record is None:
        return None
    return HeldOut(tuple(tuple(int(v) for v in unit) for unit in record["units"]),
                   tuple((np.asarray(y), np.asarray(s, dtype=float)) for y, s in record["scores"]))


def held_out_by_trial(results: Any, frame: pd.DataFrame) -> dict[str, HeldOut]:
    """Each finished trial's :class:`HeldOut` from a Tune ``ResultGrid``, by the trial id ``frame`` gives its path."""
    ids = dict(zip(frame["path"], frame["trial_id"].astype(str), strict=True)) if "path" in frame else {}
    held = {}
    for result in results:
        found = held_out_of(result.checkpoint) if result.path in ids else None
        if found is not None:
            held[ids[result.path]] = found
    return held


class PairedComparer:
    """Paired bootstrap differences between trials, on one set of resamples shared by every trial."""

    def __init__(self, held_out: Mapping[str, HeldOut], *, metric: str, target_recall: float, draws: int = DRAWS,
                 seed: int = 0) -> None:
        self.held_out, self.metric, self.target_recall = held_out, metric, target_recall
        self.draws, self.seed = draws, seed
        self._means: dict[str, tuple[float, np.ndarray]] = {}
        self._resamples: dict[tuple, list[np.ndarray]] = {}

    def difference(self, a: str, b: str) -> Difference | None:
        """Trial ``a``'s metric minus trial ``b``'s, paired; None when they were not scored on the same images."""
        if a not in self.held_out or b not in self.held_out or not self.held_out[a].pairs_with(self.held_out[b]):
            return None
        first = self.held_out[a]
        return paired_difference(self._mean(a), self._mean(b), images=first.images, units=len(first.units),
                                 confidence=CONFIDENCE)

    def _mean(self, trial: str) -> tuple[float, np.ndarray]:
        if trial not in self._means:
            held = self.held_out[trial]
            # The same draws for every trial scored on the same units and images: a paired bootstrap.
            key = (held.units, tuple(y.tobytes() for y, _ in held.scores))
            if key not in self._resamples:
                self._resamples[key] = unit_resamples([y for y, _ in held.scores], n_resamples=self.draws,
                                                      seed=self.seed)
            self._means[trial] = resampled_mean(held.scores, self._resamples[key], metric=self.metric,
                                                target_recall=self.target_recall)
        return self._means[trial]


def eligible(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked trials that can be chosen: an objective, the guard passed (or not acting), not diverged."""
    keep = ranked[OBJECTIVE].notna()
    if "guard_passed" in ranked:
        keep &= ranked["guard_passed"].ne(False)
    if "ended_by" in ranked:
        keep &= ranked["ended_by"].ne("diverged")
    return ranked[keep]


def ties_with_best(ranked: pd.DataFrame, comparer: PairedComparer, *, candidates: int = TIE_CANDIDATES
                   ) -> list[dict[str, Any]]:
    """The best eligible trial, then each of the next ``candidates``: its difference from the best and whether tied."""
    pool = eligible(ranked).head(candidates + 1)
    if pool.empty:
        return []
    best = str(pool["trial_id"].iloc[0])
    rows = [{"trial_id": best, "tie": "best"}]
    for trial in pool["trial_id"].iloc[1:].astype(str):
        diff = comparer.difference(best, trial)
        rows.append({"trial_id": trial, "tie": "not compared" if diff is None else
                     ("worse" if diff.significant else "tied"),
                     **({} if diff is None else {"best_minus_this": diff.to_json()})})
    return rows


def cheapest(tied: pd.DataFrame) -> str:
    """The tied trial with the fewest parameters, then the fewest training epochs, then the leaderboard's order."""
    order = tied.assign(_rank=range(len(tied)))
    keys = [k for k in ("parameters", "epochs") if k in order] + ["_rank"]
    return str(order.sort_values(keys, kind="stable")["trial_id"].iloc[0])


def leaderboard_first(tied: pd.DataFrame) -> str:
    """The best-ranked trial, whatever its ties."""
    return str(tied["trial_id"].iloc[0])


TIE_RULES: dict[str, Callable[[pd.DataFrame], str]] = {"cheapest": cheapest, "best": leaderboard_first}
TIE_RULE_WORDS = {
    "cheapest": "among the trials tied with the best, the one with the fewest parameters, then the fewest epochs",
    "best": "the leaderboard's first, whatever its ties",
}


def strategy_effects(ranked: pd.DataFrame, comparer: PairedComparer, *, mode: str) -> list[dict[str, Any]]:
    """Per architecture, the best trial of each strategy minus the best of ``none``, paired on the same images."""
    pool = eligible(ranked)
    if "config/strategy" not in pool or "config/architecture" not in pool:
        return []
    rows = []
    for architecture, trials in pool.groupby("config/architecture", sort=False):
        best = trials.groupby("config/strategy", sort=False).head(1).set_index("config/strategy")["trial_id"]
        if BASELINE_STRATEGY not in best:
            continue
        for strategy, trial in best.items():
            if strategy == BASELINE_STRATEGY:
                continue
            diff = comparer.difference(str(trial), str(best[BASELINE_STRATEGY]))
            rows.append({"architecture": architecture, "strategy": strategy, "trial_id": str(trial),
                         "baseline_trial_id": str(best[BASELINE_STRATEGY]),
                         "effect": None if diff is None else diff.to_json(),
                         "verdict": "not compared" if diff is None else verdict(diff, mode=mode)})
    return rows


def verdict(diff: Difference, *, mode: str) -> str:
    """``better``, ``worse`` or ``no difference the data can tell`` for a difference on a metric of ``mode``."""
    if not diff.significant:
        return "no difference the data can tell"
    return "better" if (diff.estimate > 0) == (mode == "max") else "worse"


def compare(ranked: pd.DataFrame, held_out: Mapping[str, HeldOut], *, metric: str, mode: str, target_recall: float,
            rule: str, draws: int = DRAWS, seed: int = 0) -> dict[str, Any]:
    """The record of ``comparisons.json``: ties with the best, the trial the tie rule delivers, strategy effects."""
    comparer = PairedComparer(held_out, metric=metric, target_recall=target_recall, draws=draws, seed=seed)
    ties = ties_with_best(ranked, comparer)
    tied_ids = [row["trial_id"] for row in ties if row["tie"] in ("best", "tied")]
    by_id = ranked.set_index(ranked["trial_id"].astype(str), drop=False)
    tied = by_id.loc[tied_ids]
    if "weights_kept" in tied:  # only a trial whose weights stay can be delivered (search.retention)
        tied = tied[tied["weights_kept"].ne(False)]
    chosen = TIE_RULES[rule](tied.reset_index(drop=True)) if not tied.empty else (tied_ids or [None])[0]
    compared = sum(row["tie"] != "not compared" for row in ties) - 1
    return {
        "metric": metric, "mode": mode, "target_recall": target_recall, "draws": draws, "confidence": CONFIDENCE,
        "how": "paired stratified bootstrap over each (seed, fold) unit's held-out images, the same draws for "
               "every trial; the metric's mean over units",
        "best": ties[0]["trial_id"] if ties else None,
        "ties": ties,
        "tied_with_best": len(tied_ids) - 1 if ties else 0,
        "compared": max(compared, 0),
        "rule": rule, "rule_words": TIE_RULE_WORDS[rule],
        "chosen": chosen,
        "effects": strategy_effects(ranked, comparer, mode=mode),
    }


def tie_marks(trials: pd.DataFrame, record: Mapping[str, Any]) -> pd.Series:
    """Per trial: ``best``, ``tied``, ``worse`` (than the best), ``not compared`` or empty (beyond the candidates)."""
    marks = {row["trial_id"]: row["tie"] for row in record.get("ties", [])}
    return trials["trial_id"].astype(str).map(marks).fillna("").rename("tie")


def ties_in_words(record: Mapping[str, Any]) -> str:
    """One sentence on the best and its ties, and what the data can tell apart."""
    if not record.get("best"):
        return "No trial could be chosen, so none was compared."
    k, compared = record["tied_with_best"], record["compared"]
    how = (f"paired bootstrap of {record['metric']} on the same held-out images, {record['confidence']:.0%} "
           f"interval")
    if compared == 0:
        return f"Best: {record['best']}; no other trial could be compared with it ({how})."
    if k == compared:
        return (f"Best: {record['best']}, tied with all {k} others compared ({how}): the data cannot tell these "
                "configurations apart.")
    return f"Best: {record['best']}, tied with {k} other{'s' if k != 1 else ''} of the {compared} compared ({how})."


def effects_frame(record: Mapping[str, Any]) -> pd.DataFrame:
    """The strategy-effect table: architecture, strategy, difference from none with its interval and p-value."""
    rows = []
    for row in record.get("effects", []):
        effect = row["effect"] or {}
        rows.append({"architecture": row["architecture"], "strategy": row["strategy"],
                     f"{record['metric']} minus none": effect.get("estimate"),
                     "95% low": effect.get("low"), "95% high": effect.get("high"), "p": effect.get("p_value"),
                     "verdict": row["verdict"]})
    return pd.DataFrame(rows)


def effects_in_words(record: Mapping[str, Any]) -> str:
    """One sentence: which strategies differ from none by more than noise, or that none does."""
    effects = record.get("effects", [])
    if not effects:
        return "No strategy could be compared with none (the space does not vary the strategy, or lacks none)."
    told = [f"{e['strategy']} on {e['architecture']} ({e['verdict']})" for e in effects
            if e["verdict"] in ("better", "worse")]
    if not told:
        return (f"No strategy differs from none by more than noise on these held-out images "
                f"({len(effects)} comparisons): the data cannot tell them apart.")
    return f"Differences the data can tell: {'; '.join(told)}; the other {len(effects) - len(told)} are within noise."


def comparison_lines(record: Mapping[str, Any]) -> list[str]:
    """The CLI's lines on what the data can tell apart: ties with the best, the tie rule's choice, strategy effects."""
    lines = [ties_in_words(record)]
    if record.get("chosen") and record["tied_with_best"] > 0:
        same = record["chosen"] == record["best"]
        lines.append(f"Delivered: {record['chosen']} ({record['rule_words']}; --on-ties {record['rule']})"
                     + (", which is the best itself." if same else "."))
    effects = effects_frame(record)
    if not effects.empty:
        lines.append(f"\nImbalance strategies against none, per architecture (best trial of each, paired on the same "
                     f"held-out images; {record['metric']}):")
        lines.append(effects.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    lines.append(effects_in_words(record))
    return lines


__all__ = ["comparison_lines", "COMPARISONS_FILE", "HeldOut", "PairedComparer", "TIE_RULES", "compare", "effects_frame",
           "effects_in_words", "held_out_by_trial", "held_out_of", "strategy_effects", "tie_marks", "ties_in_words", "ties_with_best"]
