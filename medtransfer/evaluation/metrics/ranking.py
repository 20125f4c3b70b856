"""Ranking metrics: ROC curve, AUROC (rank statistic, ties count one half) and AUPRC.

Multi-class tasks are scored one-vs-rest per class, multi-label tasks per label; ``average=
"macro"`` is the unweighted mean over classes that have both positives and negatives (NaN
otherwise), ``average=None`` returns one value per class. A binary task gives one number.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.metrics.score_inputs import parse_scores

__all__ = ["auprc", "auroc", "binary_auprc", "binary_auroc", "reduce_classes", "roc_curve"]

Average = Literal["macro"] | None


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def binary_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of one binary column: P(score of a positive > score of a negative), ties 1/2.

    Computed from the Mann-Whitney U statistic with average ranks; NaN without both classes.

    Example:
        >>> binary_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        0.75
    """
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(scores)[pos].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _curve_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """True/false positives when predicting ``score >= t`` for each distinct ``t``, descending."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tps = np.cumsum(y)[last_of_group].astype(np.float64)
    fps = (last_of_group + 1) - tps
    return tps, fps, s[last_of_group]


def binary_auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds; NaN without positives.

    Example:
        >>> binary_auprc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        0.8333333333333333
    """
    if labels.sum() == 0:
        return float("nan")
    tps, fps, _ = _curve_counts(scores, labels)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a binary task: false positive rates, true positive rates, thresholds.

    A case is called positive when ``score >= threshold``; the first point (0, 0) has threshold
    ``inf``.

    Args:
        scores: (N,) scores of the positive class.
        labels: (N,) 0/1.

    Example:
        >>> fpr, tpr, thr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> fpr.tolist(), tpr.tolist(), thr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.35, 0.1])
    """
    inputs = parse_scores(scores, labels)
    if inputs.task != "binary":
        raise ConfigError("roc_curve takes a binary task: (N,) scores and (N,) 0/1 labels.")
    tps, fps, thresholds = _curve_counts(inputs.scores, inputs.labels)
    n_pos, n_neg = tps[-1], fps[-1]
    tpr = np.r_[0.0, tps] / n_pos if n_pos else np.full(tps.size + 1, np.nan)
    fpr = np.r_[0.0, fps] / n_neg if n_neg else np.full(fps.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def reduce_classes(values: np.ndarray, task: str, average: Average) -> float | np.ndarray:
    """One number for a binary task; per-class values or their NaN-ignoring mean otherwise."""
    if task == "binary":
        return float(values[0])
    if average is None:
        return values
    if average != "macro":
        raise ConfigError(f"average must be 'macro' or None, got {average!r}.")
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def auroc(scores: Any, labels: Any, average: Average = "macro") -> float | np.ndarray:
    """Area under the ROC curve (binary, one-vs-rest multi-class, or per label).

    Args:
        scores: (N,) or (N, K) scores (probabilities or logits).
        labels: (N,) class indices or (N, K) 0/1 indicators; see docs/evaluation.md.
        average: ``"macro"`` (mean over classes with both outcomes) or None (per class).

    Returns:
        A float, or a (K,) array with ``average=None``; NaN where a class lacks positives or
        negatives.

    Example:
        >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
        >>> auroc([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6]], [0, 1, 2], average=None).tolist()
        [1.0, 1.0, 1.0]
    """
    inputs = parse_scores(scores, labels)
    s, y = inputs.one_vs_rest()
    values = np.array([binary_auroc(s[:, k], y[:, k]) for k in range(s.shape[1])])
    return reduce_classes(values, inputs.task, average)


def auprc(scores: Any, labels: Any, average: Average = "macro") -> float | np.ndarray:
    """Area under the precision-recall curve as average precision (no interpolation).

    Args:
        scores: (N,) or (N, K) scores (probabilities or logits).
        labels: (N,) class indices or (N, K) 0/1 indicators.
        average: ``"macro"`` or None (per class).

    Returns:
        A float, or a (K,) array with ``average=None``; NaN where a class has no positives.

    Example:
        >>> round(auprc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
        0.8333
    """
    inputs = parse_scores(scores, labels)
    s, y = inputs.one_vs_rest()
    values = np.array([binary_auprc(s[:, k], y[:, k]) for k in range(s.shape[1])])
    return reduce_classes(values, inputs.task, average)
