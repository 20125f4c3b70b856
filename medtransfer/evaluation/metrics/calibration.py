"""Calibration: expected calibration error (ECE) with equal-width bins, and the bins themselves.

Bins split [0, 1] into ``n_bins`` equal intervals, closed on the right: ``[0, 1/n]``,
``(1/n, 2/n]``, ..., ``((n-1)/n, 1]``. ECE is ``sum_b (n_b / N) |accuracy_b - confidence_b|``
over non-empty bins (Guo et al., ICML 2017). What is binned depends on the task:

- binary: the predicted probability of the positive class against the observed fraction of
  positives (reliability of the probability itself);
- multi-class: the top-label confidence (largest probability) against whether argmax was right;
- multi-label: each label as a binary task; ``average="macro"`` takes the mean over labels.

Ten bins (the default) suit the few dozen to few hundred cases of typical medical test sets;
15 is common for large natural-image sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.metrics.ranking import Average, reduce_classes
from medtransfer.evaluation.metrics.score_inputs import ScoreInputs, parse_scores

__all__ = ["CalibrationBins", "calibration_bins", "expected_calibration_error"]


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of a reliability diagram (NaN for empty bins)."""

    edges: np.ndarray  # (n_bins + 1,)
    counts: np.ndarray  # (n_bins,) cases per bin
    confidence: np.ndarray  # (n_bins,) mean predicted probability
    accuracy: np.ndarray  # (n_bins,) observed fraction of positives / correct

    @property
    def ece(self) -> float:
        """Expected calibration error of these bins."""
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def _bin(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> CalibrationBins:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.digitize(confidence, edges[1:-1], right=True)  # (lo, hi], 0 joins the first bin
    counts = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        acc = np.bincount(index, weights=outcome.astype(np.float64), minlength=n_bins) / counts
    return CalibrationBins(edges, counts.astype(np.int64), conf, acc)


def _check_bins(n_bins: int) -> None:
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}.")


def _columns(inputs: ScoreInputs) -> list[tuple[np.ndarray, np.ndarray]]:
    if inputs.task == "binary":
        return [(inputs.scores, inputs.labels)]
    if inputs.task == "multiclass":
        correct = np.argmax(inputs.scores, axis=1) == inputs.labels
        return [(inputs.scores.max(axis=1), correct)]
    return [(inputs.scores[:, k], inputs.labels[:, k]) for k in range(inputs.n_classes)]


def calibration_bins(scores: Any, labels: Any, n_bins: int = 10) -> list[CalibrationBins]:
    """Reliability-diagram bins: one entry for binary and multi-class, one per label otherwise.

    Args:
        scores: (N,) or (N, K) probabilities in [0, 1].
        labels: (N,) class indices or (N, K) 0/1 indicators.
        n_bins: number of equal-width bins on [0, 1].

    Example:
        >>> bins = calibration_bins([0.1, 0.3, 0.8, 0.9], [0, 1, 1, 1], n_bins=2)[0]
        >>> bins.counts.tolist(), bins.confidence.tolist(), bins.accuracy.tolist()
        ([2, 2], [0.2, 0.8500000000000001], [0.5, 1.0])
    """
    _check_bins(n_bins)
    inputs = parse_scores(scores, labels, probabilities=True)
    return [_bin(conf, outcome, n_bins) for conf, outcome in _columns(inputs)]


def expected_calibration_error(
    scores: Any, labels: Any, n_bins: int = 10, average: Average = "macro"
) -> float | np.ndarray:
    """Expected calibration error with ``n_bins`` equal-width bins (see the module text).

    Args:
        scores: (N,) or (N, K) probabilities in [0, 1].
        labels: (N,) class indices or (N, K) 0/1 indicators.
        n_bins: number of equal-width bins on [0, 1].
        average: for multi-label, ``"macro"`` or None (per label); ignored otherwise.

    Example:
        >>> # bin [0, .5]: confidence .2, 1 of 2 positive; bin (.5, 1]: confidence .85, 2 of 2
        >>> round(expected_calibration_error([0.1, 0.3, 0.8, 0.9], [0, 1, 1, 1], n_bins=2), 4)
        0.225
    """
    _check_bins(n_bins)
    inputs = parse_scores(scores, labels, probabilities=True)
    values = np.array([_bin(c, o, n_bins).ece for c, o in _columns(inputs)])
    if inputs.task == "multilabel":
        return reduce_classes(values, inputs.task, average)
    return float(values[0])
