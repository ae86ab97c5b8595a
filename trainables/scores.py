"""A split's labels and positive-class probabilities, and how several models' scores combine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """True labels and positive-class probabilities of one split."""

    y_true: np.ndarray
    y_score: np.ndarray

    def predictions(self, threshold: float | None = None) -> np.ndarray:
        """Hard labels: argmax (probability > 0.5) by default, else ``score >= threshold``."""
        if threshold is None:
            return (self.y_score > 0.5).astype(int)
        return (self.y_score >= threshold).astype(int)


def average_scores(members: list[Scores]) -> Scores:
    """The mean positive-class probability of several models on the same split: an ensemble's scores."""
    if any(not np.array_equal(m.y_true, members[0].y_true) for m in members):
        raise ValueError("ensemble members were scored on different images")
    return Scores(members[0].y_true, np.mean([m.y_score for m in members], axis=0))


def pool_scores(parts: list[Scores]) -> Scores:
    """Scores of disjoint sets of images as one set: the folds' held-out scores pooled cover the train split once."""
    return Scores(np.concatenate([part.y_true for part in parts]), np.concatenate([part.y_score for part in parts]))
