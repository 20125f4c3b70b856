"""Metrics of hard decisions: confusion matrix, accuracy, balanced accuracy, sensitivity and
specificity at a threshold or at Youden's J.

Decisions: a binary or multi-label case is positive for a class when ``score >= threshold``
(default 0.5); a multi-class case is assigned the class of highest score (argmax), unless a
numeric threshold is given to :func:`sensitivity_specificity`, which then applies one-vs-rest
to each class's score (accuracy, balanced accuracy and the confusion matrix of a multi-class
task always use argmax). With
``threshold="youden"`` each class uses the threshold that maximises Youden's J = sensitivity +
specificity - 1 on the same data (the highest such threshold when several tie).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.metrics.ranking import Average, _curve_counts, reduce_classes
from medtransfer.evaluation.metrics.score_inputs import ScoreInputs, parse_scores

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "confusion_matrix",
    "sensitivity_specificity",
    "youden_threshold",
]

Threshold = float | str | None


def _parse(
    scores: Any, labels: Any, threshold: Threshold, argmax_only: bool = False
) -> ScoreInputs:
    """Parse inputs; a 0.5 or numeric threshold needs probabilities, argmax and Youden do not."""
    inputs = parse_scores(scores, labels)
    if inputs.task == "multiclass" and argmax_only and threshold is not None:
        raise ConfigError("multi-class accuracy and confusion use argmax; pass threshold=None.")
    needs_probabilities = threshold != "youden" and not (
        inputs.task == "multiclass" and threshold is None
    )
    if needs_probabilities:
        parse_scores(scores, labels, probabilities=True)
    return inputs


def _youden_column(scores: np.ndarray, labels: np.ndarray) -> float:
    tps, fps, thresholds = _curve_counts(scores, labels)
    n_pos, n_neg = tps[-1], fps[-1]
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    j = tps / n_pos - fps / n_neg
    return float(thresholds[int(np.argmax(j))])  # argmax: the first, i.e. highest, of ties


def _decisions(inputs: ScoreInputs, threshold: Threshold) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true 0/1 indicators, (N, K) one-vs-rest."""
    scores, truth = inputs.one_vs_rest()
    if threshold is None and inputs.task == "multiclass":
        pred = np.argmax(inputs.scores, axis=1)
        return (pred[:, None] == np.arange(inputs.n_classes)[None, :]).astype(np.int64), truth
    if threshold is None:
        threshold = 0.5
    if threshold == "youden":
        cuts = np.array([_youden_column(scores[:, k], truth[:, k]) for k in range(scores.shape[1])])
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        cuts = np.full(scores.shape[1], float(threshold))
    else:
        raise ConfigError(f"threshold must be a number, 'youden' or None, got {threshold!r}.")
    return (scores >= cuts[None, :]).astype(np.int64), truth


def _counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, ...]:
    tp = np.sum((pred == 1) & (truth == 1), axis=0).astype(np.float64)
    fp = np.sum((pred == 1) & (truth == 0), axis=0).astype(np.float64)
    fn = np.sum((pred == 0) & (truth == 1), axis=0).astype(np.float64)
    tn = np.sum((pred == 0) & (truth == 0), axis=0).astype(np.float64)
    return tp, fp, fn, tn


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def youden_threshold(scores: Any, labels: Any, average: Average = None) -> float | np.ndarray:
    """Threshold maximising Youden's J (sensitivity + specificity - 1), per class.

    Args:
        scores: (N,) or (N, K) probabilities or scores.
        labels: (N,) class indices or (N, K) 0/1 indicators.
        average: None (default: per class) or ``"macro"`` (mean threshold, rarely useful).

    Returns:
        The score value ``t`` (decide positive when ``score >= t``); a float for a binary task.

    Example:
        >>> youden_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.8
    """
    inputs = parse_scores(scores, labels)
    s, y = inputs.one_vs_rest()
    values = np.array([_youden_column(s[:, k], y[:, k]) for k in range(s.shape[1])])
    return reduce_classes(values, inputs.task, average)


def sensitivity_specificity(
    scores: Any, labels: Any, threshold: Threshold = None, average: Average = None
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Sensitivity (recall of positives) and specificity (recall of negatives), one-vs-rest.

    Args:
        scores: (N,) or (N, K) probabilities.
        labels: (N,) class indices or (N, K) 0/1 indicators.
        threshold: a number, ``"youden"`` or None (0.5; argmax for multi-class).
        average: None (per class) or ``"macro"``.

    Returns:
        ``(sensitivity, specificity)``: floats for a binary task, else (K,) arrays (or macro
        floats); NaN where a class has no positives (sensitivity) or no negatives (specificity).

    Example:
        >>> sensitivity_specificity([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        (0.5, 1.0)
        >>> sensitivity_specificity([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], threshold="youden")
        (0.5, 1.0)
    """
    inputs = _parse(scores, labels, threshold)
    tp, fp, fn, tn = _counts(*_decisions(inputs, threshold))
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return reduce_classes(sens, inputs.task, average), reduce_classes(spec, inputs.task, average)


def confusion_matrix(scores: Any, labels: Any, threshold: Threshold = None) -> np.ndarray:
    """Confusion counts, rows = true class, columns = predicted class.

    Args:
        scores: (N,) or (N, K) probabilities.
        labels: (N,) class indices or (N, K) 0/1 indicators.
        threshold: a number, ``"youden"`` or None (0.5; argmax for multi-class).

    Returns:
        int64 ``(2, 2)`` ``[[TN, FP], [FN, TP]]`` for binary, ``(K, K)`` for multi-class
        (argmax decisions; a threshold is refused), ``(K, 2, 2)`` per label for multi-label.

    Example:
        >>> confusion_matrix([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]).tolist()
        [[2, 0], [1, 1]]
        >>> confusion_matrix([[0.7, 0.3], [0.4, 0.6], [0.8, 0.2]], [0, 1, 1]).tolist()
        [[1, 0], [1, 1]]
    """
    inputs = _parse(scores, labels, threshold, argmax_only=True)
    if inputs.task == "multiclass":
        k = inputs.n_classes
        pred = np.argmax(inputs.scores, axis=1)
        return np.bincount(inputs.labels * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)
    tp, fp, fn, tn = _counts(*_decisions(inputs, threshold))
    per_class = np.stack([np.stack([tn, fp], -1), np.stack([fn, tp], -1)], 1).astype(np.int64)
    return per_class[0] if inputs.task == "binary" else per_class


def accuracy(scores: Any, labels: Any, threshold: Threshold = None) -> float:
    """Fraction of correct decisions (multi-label: over all case-label pairs).

    Args:
        scores: (N,) or (N, K) probabilities.
        labels: (N,) class indices or (N, K) 0/1 indicators.
        threshold: a number, ``"youden"`` or None (0.5; argmax for multi-class).

    Example:
        >>> accuracy([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    inputs = _parse(scores, labels, threshold, argmax_only=True)
    pred, truth = _decisions(inputs, threshold)
    if inputs.task == "multiclass":
        return float(np.mean(np.argmax(pred, axis=1) == inputs.labels))
    return float(np.mean(pred == truth))


def balanced_accuracy(scores: Any, labels: Any, threshold: Threshold = None) -> float:
    """Mean recall over classes: (sensitivity + specificity) / 2 for binary and per label;
    the mean of per-class recalls for multi-class (classes without cases are skipped).

    Args:
        scores: (N,) or (N, K) probabilities.
        labels: (N,) class indices or (N, K) 0/1 indicators.
        threshold: a number, ``"youden"`` or None (0.5; argmax for multi-class).

    Example:
        >>> balanced_accuracy([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    inputs = _parse(scores, labels, threshold, argmax_only=True)
    tp, fp, fn, tn = _counts(*_decisions(inputs, threshold))
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    per_class = sens if inputs.task == "multiclass" else (sens + spec) / 2.0
    finite = per_class[~np.isnan(per_class)]
    return float(finite.mean()) if finite.size else float("nan")
