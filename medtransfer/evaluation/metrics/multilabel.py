"""Multi-label findings (CheXpert-style): per-label metrics that skip unknown labels.

Each of K findings is its own binary task. A label is 1 (present), 0 (absent) or *not known*:
NaN (a blank manifest cell, or an uncertain ``-1`` under ``uncertain="ignore"``) or a negative
value such as ``-1``. Unknown entries are masked: every per-label number uses only the cases
whose label for that finding is known, and the loss skips them in training.

- per label: AUROC, AUPRC (average precision), sensitivity and specificity at the label's
  threshold, and ECE, on the cases where that label is known;
- ``macro``: the unweighted mean of the per-label values that are defined (a label without
  positives or negatives among its known cases has NaN AUROC and is left out, as in
  :func:`~medtransfer.evaluation.metrics.ranking.reduce_classes`);
- ``micro``: the same metric on all known (case, finding) pairs pooled, each pair decided at its
  own finding's threshold (scikit-learn's ``average="micro"`` on the known pairs).

Thresholds are per label: given (one number, one per label, or ``{finding: number}``), or chosen
on validation data with :func:`choose_thresholds` (Youden's J, or the highest threshold that
reaches a target sensitivity). Choosing them on the test cases makes sensitivity and
specificity optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.metrics.calibration import expected_calibration_error
from medtransfer.evaluation.metrics.ranking import _curve_counts, binary_auprc, binary_auroc

__all__ = [
    "AVERAGES",
    "THRESHOLD_METHODS",
    "choose_thresholds",
    "label_counts",
    "multilabel_metrics",
    "parse_multilabel",
    "resolve_thresholds",
]

#: Summary rows besides the findings: the mean over labels and the pooled pairs.
AVERAGES = ("macro", "micro")
#: Ways :func:`choose_thresholds` picks a threshold per label.
THRESHOLD_METHODS = ("youden", "sensitivity")
_PER_LABEL = ("auroc", "auprc", "sensitivity", "specificity", "ece")


def parse_multilabel(
    scores: Any, labels: Any, probabilities: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Check ``(N, K)`` scores and labels; unknown labels (NaN or negative) become NaN.

    Args:
        scores: (N, K) scores, one column per finding (probabilities when ``probabilities``).
        labels: (N, K) with 1, 0, NaN or -1 (not known).
        probabilities: require scores in [0, 1].

    Returns:
        float64 scores and labels (1.0, 0.0 or NaN).

    Example:
        >>> s, y = parse_multilabel([[0.9, 0.2]], [[1, -1]])
        >>> y.tolist()
        [[1.0, nan]]
    """
    s = np.asarray(_numeric(scores, "scores"), dtype=np.float64)
    y = np.asarray(_numeric(labels, "labels"), dtype=np.float64)
    if s.ndim != 2 or y.shape != s.shape or s.shape[0] == 0:
        raise ConfigError(
            f"multi-label scores {s.shape} and labels {y.shape} must both be (N, K) with N >= 1: "
            "one row per case, one column per finding."
        )
    if not np.all(np.isfinite(s)):
        raise ConfigError("scores hold NaN or infinite values; remove or fix those cases.")
    if probabilities and (s.min() < 0 or s.max() > 1):
        raise ConfigError(
            f"scores must be probabilities in [0, 1] (found {s.min():g}..{s.max():g}); apply a "
            "sigmoid first."
        )
    y = np.where(np.isnan(y) | (y < 0), np.nan, y)
    bad = ~np.isnan(y) & (y != 0) & (y != 1)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(
            f"multi-label labels must be 1, 0, or NaN / -1 (not known); case {row}, label {col} "
            f"holds {y[row, col]:g}."
        )
    return s, y


def _numeric(x: Any, name: str) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be numeric (numpy, torch or a list): {err}") from None


def resolve_thresholds(threshold: Any, names: Sequence[str]) -> np.ndarray:
    """One threshold per label from ``None`` (0.5), a number, a sequence or ``{name: number}``.

    Example:
        >>> resolve_thresholds({"effusion": 0.3}, ["opacity", "effusion"]).tolist()
        [0.5, 0.3]
    """
    k = len(names)
    if threshold is None:
        return np.full(k, 0.5)
    if isinstance(threshold, Mapping):
        unknown = sorted(set(map(str, threshold)) - set(names))
        if unknown:
            raise ConfigError(
                f"thresholds for {unknown}, which are not findings; findings: {', '.join(names)}."
            )
        cuts = np.array([float(threshold.get(n, 0.5)) for n in names])
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        cuts = np.full(k, float(threshold))
    elif isinstance(threshold, (Sequence, np.ndarray)) and not isinstance(threshold, str):
        cuts = np.asarray(threshold, dtype=np.float64).reshape(-1)
        if cuts.size != k:
            raise ConfigError(f"got {cuts.size} thresholds for {k} findings; give one per finding.")
    else:
        raise ConfigError(
            f"threshold={threshold!r}: give a number, one number per finding, or "
            "{finding: number}; choose them on validation data with choose_thresholds()."
        )
    if not np.all((cuts >= 0) & (cuts <= 1)):
        raise ConfigError(f"thresholds must lie in [0, 1], got {cuts.tolist()}.")
    return cuts


def _column_threshold(s: np.ndarray, y: np.ndarray, method: str, target: float) -> float:
    tps, fps, cuts = _curve_counts(s, y)
    n_pos, n_neg = tps[-1] if tps.size else 0, fps[-1] if fps.size else 0
    if n_pos == 0 or (method == "youden" and n_neg == 0):
        return 0.5  # nothing to choose from: the default threshold
    if method == "youden":
        j = tps / n_pos - fps / n_neg
        return float(cuts[int(np.argmax(j))])  # the highest of tied thresholds
    reached = np.flatnonzero(tps / n_pos >= target - 1e-12)
    return float(cuts[int(reached[0])])  # the highest threshold that reaches the target


def _report_scores(report: Any) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Per-case scores and labels of a classification Report: (N, K) findings or (N, 1) binary."""
    names = list(report.metadata.get("class_names") or [])
    rows = report.cases
    if report.metadata.get("multilabel"):
        scores = [[row[f"score/{n}"] for n in names] for row in rows]
        labels = [[np.nan if v is None else v for v in row["label"]] for row in rows]
        return np.asarray(scores, float), np.asarray(labels, float), names
    if not rows or "score" not in rows[0]:
        raise ConfigError(
            "choose_thresholds(report): the report is not of a binary or multi-label "
            "classification (several classes are decided by argmax)."
        )
    scores = [[row["score"]] for row in rows]
    return np.asarray(scores, float), np.asarray([[row["label"]] for row in rows], float), None


def choose_thresholds(
    scores: Any,
    labels: Any = None,
    method: str = "youden",
    *,
    target_sensitivity: float = 0.9,
) -> Any:
    """Choose one threshold per label on validation data (known labels only).

    Args:
        scores: (N, K) probabilities; or the :class:`~medtransfer.evaluation.Report` of
            ``evaluate_classification`` on the validation cases (then ``labels`` is None and
            the result is ``{finding: threshold}``, or one float for a binary task).
        labels: (N, K) 1, 0, or NaN / -1 (not known).
        method: ``"youden"`` (maximise sensitivity + specificity - 1; the highest of tied
            thresholds) or ``"sensitivity"`` (the highest threshold whose sensitivity reaches
            ``target_sensitivity``: the most specific such decision).
        target_sensitivity: for ``method="sensitivity"``, in (0, 1].

    Returns:
        (K,) thresholds (decide positive when ``score >= threshold``); 0.5 for a label whose
        known validation cases lack positives (or, for Youden, negatives). A Report gives
        ``{finding: threshold}`` (multi-label) or a float (binary).

    Example:
        >>> s = [[0.9, 0.8], [0.6, 0.3], [0.4, 0.7], [0.2, 0.1]]
        >>> y = [[1, 1], [1, 0], [0, float("nan")], [0, 0]]
        >>> choose_thresholds(s, y).tolist()
        [0.6, 0.8]
        >>> choose_thresholds(s, y, "sensitivity", target_sensitivity=0.5).tolist()
        [0.9, 0.8]
    """
    if labels is None and hasattr(scores, "cases"):  # a validation Report
        s, y, names = _report_scores(scores)
        cuts = choose_thresholds(s, y, method, target_sensitivity=target_sensitivity)
        return dict(zip(names, cuts.tolist())) if names is not None else float(cuts[0])
    if method not in THRESHOLD_METHODS:
        raise ConfigError(f"method={method!r} is not one of {THRESHOLD_METHODS}.")
    if not 0 < target_sensitivity <= 1:
        raise ConfigError(f"target_sensitivity must lie in (0, 1], got {target_sensitivity!r}.")
    s, y = parse_multilabel(scores, labels)
    cuts = []
    for k in range(s.shape[1]):
        known = ~np.isnan(y[:, k])
        cuts.append(_column_threshold(s[known, k], y[known, k], method, target_sensitivity))
    return np.array(cuts)


def label_counts(labels: Any, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{finding: {"positive", "negative", "unknown"}}`` counts of cases.

    Example:
        >>> label_counts([[1, 0], [0, float("nan")]], ["opacity", "effusion"])["effusion"]
        {'positive': 0, 'negative': 1, 'unknown': 1}
    """
    y = np.asarray(labels, dtype=np.float64)
    return {
        str(name): {
            "positive": int(np.sum(y[:, k] == 1)),
            "negative": int(np.sum(y[:, k] == 0)),
            "unknown": int(np.sum(np.isnan(y[:, k]) | (y[:, k] < 0))),
        }
        for k, name in enumerate(names)
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _binary(s: np.ndarray, y: np.ndarray, cut: np.ndarray, n_bins: int) -> dict[str, float]:
    """Every per-label number of one set of known (score, label) pairs; ``cut`` per pair."""
    if y.size == 0:
        return dict.fromkeys(_PER_LABEL, float("nan"))
    pred, truth = s >= cut, y == 1
    tp, fn = np.sum(pred & truth), np.sum(~pred & truth)
    tn, fp = np.sum(~pred & ~truth), np.sum(pred & ~truth)
    return {
        "auroc": binary_auroc(s, y),
        "auprc": binary_auprc(s, y),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ece": float(expected_calibration_error(s, y.astype(np.int64), n_bins=n_bins)),
    }


def multilabel_metrics(
    scores: Any,
    labels: Any,
    *,
    threshold: Any = None,
    names: Sequence[str] | None = None,
    n_bins: int = 10,
) -> dict[str, float]:
    """Per-label, macro and micro AUROC, AUPRC, sensitivity, specificity and ECE.

    Args:
        scores: (N, K) probabilities.
        labels: (N, K) 1, 0, or NaN / -1 (not known: skipped).
        threshold: None (0.5), a number, one per label, or ``{name: number}``.
        names: the K finding names (default ``label_0``...); ``macro`` and ``micro`` are
            reserved.
        n_bins: calibration bins for ECE.

    Returns:
        ``{"<metric>/<name>": ..., "<metric>/macro": ..., "<metric>/micro": ...}`` for each
        metric of ``auroc, auprc, sensitivity, specificity, ece``.

    Example:
        >>> nan = float("nan")
        >>> m = multilabel_metrics([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.7]],
        ...                        [[1, 0], [0, 1], [1, nan], [0, 0]], names=["opacity", "effusion"])
        >>> m["auroc/opacity"], m["auroc/effusion"], m["auroc/macro"], round(m["auroc/micro"], 3)
        (1.0, 1.0, 1.0, 0.917)
    """
    s, y = parse_multilabel(scores, labels)
    k = s.shape[1]
    names = [f"label_{i}" for i in range(k)] if names is None else [str(n) for n in names]
    if len(names) != k:
        raise ConfigError(f"got {len(names)} names for {k} findings; give one per finding.")
    reserved = sorted(set(names) & set(AVERAGES))
    if reserved:
        raise ConfigError(f"findings may not be called {reserved} (summary rows of the averages).")
    cuts = resolve_thresholds(threshold, names)
    known = ~np.isnan(y)
    out: dict[str, float] = {}
    per_label = []
    for i, name in enumerate(names):
        rows = known[:, i]
        values = _binary(s[rows, i], y[rows, i], cuts[i], n_bins)
        per_label.append(values)
        out.update({f"{metric}/{name}": value for metric, value in values.items()})
    pooled = _binary(s[known], y[known], np.broadcast_to(cuts, s.shape)[known], n_bins)
    for metric in _PER_LABEL:
        finite = [v[metric] for v in per_label if not np.isnan(v[metric])]
        out[f"{metric}/macro"] = float(np.mean(finite)) if finite else float("nan")
        out[f"{metric}/micro"] = pooled[metric]
    return out
