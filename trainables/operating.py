"""The operating point: the one threshold a delivered model calls positives at, the rule that set it, its uncertainty.

The threshold is set once, by :func:`set_operating_point`, on the scores the
model was judged on (validation, or out-of-fold with folds), and recorded as
an :class:`OperatingPoint` in the deliverable. ``best.json``, the report, the
CLI, the exported card and ``predict`` all read that record; none sets its own.

The rule is split conformal (:func:`operating_point`): with
P calibration positives and a target recall r, positive is every score at or
above the m-th highest positive score, m = ceil(r (P + 1)). The recall on new
positives then averages m / (P + 1) >= r over draws of the calibration set,
but one draw spreads around it: for exchangeable scores it is Beta(m, P + 1 - m)
distributed, and the recall counted on n new positives is beta-binomial. Those
two laws give the promise's interval, and tell when a test result falls
outside what the calibration images predict (a shift).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import beta, betabinom

RULE = "split conformal: the ceil(target x (P + 1))-th highest of the P calibration positives' scores"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold set for ``target_recall`` on ``positives`` calibration positives (``scores``: what they were)."""

    threshold: float
    target_recall: float
    positives: int  # P: calibration positives (0 when unknown, for deliverables written before this record)
    rank: int  # m: the threshold is the m-th highest calibration positive score
    scores: str  # "validation" or "out-of-fold"
    rule: str = RULE

    @property
    def expected_recall(self) -> float:
        """Mean recall on new positives over draws of the calibration set: m / (P + 1)."""
        return self.rank / (self.positives + 1) if self.positives else math.nan

    def recall_interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Central interval of the recall on (infinitely many) new positives: Beta(m, P + 1 - m)."""
        if not self.positives:
            return math.nan, math.nan
        law = beta(self.rank, self.positives + 1 - self.rank)
        tail = (1 - confidence) / 2
        return float(law.ppf(tail)), float(law.ppf(1 - tail))

    def count_interval(self, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Central interval of the recall counted on ``n`` new positives (beta-binomial), as fractions of ``n``."""
        if not self.positives or n < 1:
            return math.nan, math.nan
        law = betabinom(n, self.rank, self.positives + 1 - self.rank)
        tail = (1 - confidence) / 2
        return float(law.ppf(tail)) / n, float(law.ppf(1 - tail)) / n

    def describe(self) -> str:
        """One line: the threshold to 4 decimals, the rule, and the promise with its interval."""
        text = f"operating threshold {self.threshold:.4f} (set on {self.scores} scores for recall >= {self.target_recall}"
        if not self.positives:
            return text + ")"
        low, high = self.recall_interval()
        return (text + f", split conformal on {self.positives} positives: expected recall on new positives "
                f"{self.expected_recall:.3f}, 95 % of calibration draws between {low:.3f} and {high:.3f})")

    def check(self, recall: float, positives: int) -> dict[str, Any]:
        """How a recall measured on ``positives`` new positives (test) stands against the promise, in numbers and words."""
        low, high = self.count_interval(positives)
        within = bool(math.isnan(low) or low - 1e-9 <= recall <= high + 1e-9)
        if math.isnan(low):
            words = "no interval: the number of calibration positives is not recorded"
        elif within:
            words = (f"test recall {recall:.3f} on {positives} positives is within what the calibration scores "
                     f"predict ({low:.3f}-{high:.3f}, 95 %)")
        elif recall < low:
            words = (f"test recall {recall:.3f} on {positives} positives is below what the calibration scores predict "
                     f"({low:.3f}-{high:.3f}, 95 %): either the test images differ from the ones the threshold "
                     f"was set on (a shift), or its {self.positives} calibration positives set it too high, a 1-in-40 "
                     "chance; either way the recall promise does not hold on them; before deploying on images like "
                     "these, set the threshold again on labelled images from that site or scanner")
        else:
            words = (f"test recall {recall:.3f} on {positives} positives is above what the calibration scores predict "
                     f"({low:.3f}-{high:.3f}, 95 %): either the test images differ from the ones the threshold "
                     "was set on (a shift), or chance (1 in 40); the threshold may be more cautious there than it "
                     "needs to be")
        return {"recall": recall, "positives": positives, "interval": [low, high], "within": within, "words": words}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "expected_recall": self.expected_recall,
                "recall_interval_95": list(self.recall_interval())}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "OperatingPoint":
        return cls(float(record["threshold"]), float(record["target_recall"]), int(record["positives"]),
                   int(record["rank"]), str(record["scores"]), str(record.get("rule", RULE)))


def operating_point(y_true: np.ndarray, y_score: np.ndarray, *, target_recall: float) -> dict[str, float]:
    """The highest threshold whose recall on new positives reaches ``target_recall``, with precision and specificity.

    A positive is called when ``score >= threshold``. A new positive,
    exchangeable with the P it is set on, scores at or above the m-th highest
    of them with probability m / (P + 1); so the threshold is the m-th highest
    positive score with m = ceil(target * (P + 1)) (split conformal), not
    ceil(target * P), which reaches the target on these P but promises about
    1 / (P + 1) too much on new images (all P when the target is out of reach).
    Unlike recall at a 0.5 cut, which moves in steps of one positive,
    specificity at a fixed recall moves in steps of one negative (the larger
    class), and it cannot be won by calling everything positive.
    """
    thresholds, tps, fps = counts_above_each_threshold(y_true, y_score)
    needed = conformal_rank(int(tps[-1]), target_recall)
    reached = int(np.argmax(tps >= needed))  # the first (highest) threshold that does
    return {
        "threshold_at_recall": float(thresholds[reached]),
        "precision_at_recall": float(tps[reached] / (tps[reached] + fps[reached])),
        "specificity_at_recall": float(1 - fps[reached] / max(fps[-1], 1)),
    }


def conformal_rank(positives: int, target_recall: float) -> int:
    """m = ceil(target x (P + 1)), at most P: the rank among P positive scores that the operating threshold takes."""
    return min(math.ceil(target_recall * (positives + 1) - 1e-9), positives)


def counts_above_each_threshold(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each distinct score, highest first, and the true and false positives at ``score >= it``."""
    order = np.argsort(-np.asarray(y_score), kind="mergesort")
    scores, truth = np.asarray(y_score)[order], np.asarray(y_true).astype(bool)[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(truth)[last_of_each_score]
    return scores[last_of_each_score], tps, last_of_each_score + 1 - tps


def set_operating_point(y_true: np.ndarray, y_score: np.ndarray, *, target_recall: float,
                        scores: str) -> OperatingPoint:
    """The operating point of these calibration labels and scores (the one place a delivered threshold is set)."""
    positives = int(np.sum(np.asarray(y_true) == 1))
    if positives == 0 or positives == len(y_true):
        return OperatingPoint(math.nan, target_recall, positives, 0, scores)
    threshold = operating_point(y_true, y_score, target_recall=target_recall)["threshold_at_recall"]
    return OperatingPoint(threshold, target_recall, positives, conformal_rank(positives, target_recall), scores)


__all__ = ["CONFIDENCE", "OperatingPoint", "RULE", "conformal_rank", "counts_above_each_threshold", "operating_point",
           "set_operating_point"]
