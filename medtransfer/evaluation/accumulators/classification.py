"""All classification summary numbers at once, and a stateful accumulator for evaluation loops.

:func:`classification_metrics` returns every number of a classification evaluation (AUROC,
AUPRC, accuracy, balanced accuracy, sensitivity/specificity at the threshold and at Youden's J,
ECE, and per-class AUROC/AUPRC/sensitivity/specificity for multi-class tasks); multi-label tasks
(findings) get per-label, macro and micro numbers from
:func:`~medtransfer.evaluation.metrics.multilabel.multilabel_metrics`, unknown labels (NaN or -1)
skipped. :class:`ClassificationAccumulator` collects scores over batches and bootstraps all of
them from the same resampled cases. Youden's threshold is re-chosen in each replicate, so its
sensitivity/specificity are optimistic on the data that chose it (use a threshold fixed on
validation data for an unbiased estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.accumulators.case_ids import next_case_ids
from medtransfer.evaluation.bootstrap import Estimate, bootstrap_summary
from medtransfer.evaluation.metrics.calibration import expected_calibration_error
from medtransfer.evaluation.metrics.multilabel import multilabel_metrics, parse_multilabel
from medtransfer.evaluation.metrics.ranking import auprc, auroc, reduce_classes
from medtransfer.evaluation.metrics.score_inputs import parse_scores
from medtransfer.evaluation.metrics.thresholds import (
    accuracy,
    balanced_accuracy,
    sensitivity_specificity,
    youden_threshold,
)
from medtransfer.evaluation.wording import count

__all__ = ["ClassificationAccumulator", "classification_metrics"]


def _is_multilabel(scores: Any, labels: Any) -> bool:
    shape_s, shape_y = np.shape(scores), np.shape(labels)
    return len(shape_s) == 2 and shape_s == shape_y


def classification_metrics(
    scores: Any,
    labels: Any,
    *,
    threshold: Any = None,
    n_bins: int = 10,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Every classification summary number as ``{name: value}``.

    Args:
        scores: (N,) or (N, K) probabilities (see docs/evaluation.md for the task rules).
        labels: (N,) class indices or (N, K) multi-label indicators: 1, 0, or NaN / -1 (not
            known, skipped).
        threshold: decision threshold (None: 0.5, or argmax for multi-class); multi-label: also
            one per label or ``{name: number}``.
        n_bins: calibration bins for ECE.
        class_names: names of the K classes for per-class keys (``"auroc/liver"``); indices
            are used when None (multi-label: ``label_0``...).

    Returns:
        Keys ``auroc, auprc, accuracy, balanced_accuracy, sensitivity, specificity,
        youden_threshold, sensitivity_youden, specificity_youden, ece`` (macro means for
        multi-class), plus ``"<metric>/<class>"`` per class when K > 1. Multi-label:
        ``"<metric>/<label>"``, ``"<metric>/macro"`` and ``"<metric>/micro"`` for ``auroc,
        auprc, sensitivity, specificity, ece`` (see :mod:`.metrics.multilabel`).

    Example:
        >>> m = classification_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> m["auroc"], m["accuracy"], m["sensitivity_youden"]
        (0.75, 0.75, 0.5)
    """
    if _is_multilabel(scores, labels):
        return multilabel_metrics(
            scores, labels, threshold=threshold, names=class_names, n_bins=n_bins
        )
    inputs = parse_scores(scores, labels, probabilities=True)
    s, y = inputs.scores, inputs.labels
    per_class = {
        "auroc": auroc(s, y, average=None),
        "auprc": auprc(s, y, average=None),
        **dict(zip(("sensitivity", "specificity"), sensitivity_specificity(s, y, threshold))),
    }
    sens_j, spec_j = sensitivity_specificity(s, y, "youden")
    out = {
        "auroc": reduce_classes(np.atleast_1d(per_class["auroc"]), inputs.task, "macro"),
        "auprc": reduce_classes(np.atleast_1d(per_class["auprc"]), inputs.task, "macro"),
        "accuracy": accuracy(s, y, threshold),
        "balanced_accuracy": balanced_accuracy(s, y, threshold),
        "sensitivity": reduce_classes(
            np.atleast_1d(per_class["sensitivity"]), inputs.task, "macro"
        ),
        "specificity": reduce_classes(
            np.atleast_1d(per_class["specificity"]), inputs.task, "macro"
        ),
        "youden_threshold": youden_threshold(s, y, average="macro"),
        "sensitivity_youden": reduce_classes(np.atleast_1d(sens_j), inputs.task, "macro"),
        "specificity_youden": reduce_classes(np.atleast_1d(spec_j), inputs.task, "macro"),
        "ece": expected_calibration_error(s, y, n_bins=n_bins),
    }
    if inputs.task != "binary":
        k = inputs.n_classes
        names = [str(c) for c in (class_names if class_names is not None else range(k))]
        if len(names) != k:
            raise ConfigError(
                f"got {len(names)} class_names for {count(k, 'class', 'classes')}; give one "
                "name per class."
            )
        for metric, values in per_class.items():
            for name, value in zip(names, np.asarray(values)):
                out[f"{metric}/{name}"] = float(value)
    return {key: float(value) for key, value in out.items()}


class ClassificationAccumulator:
    """Collects classification scores and labels over batches (MONAI's Cumulative style).

    Args:
        threshold: decision threshold (None: 0.5, or argmax for multi-class); multi-label: also
            one per label or ``{name: number}``.
        n_bins: calibration bins for ECE.
        class_names: names of the classes (multi-label: findings) for per-class keys.

    Example:
        >>> acc = ClassificationAccumulator()
        >>> acc.update([0.1, 0.4], [0, 0], case_ids=["p1", "p2"])
        >>> acc.update([0.35, 0.8], [1, 1])
        >>> acc.aggregate()["auroc"], acc.case_ids
        (0.75, ['p1', 'p2', 'case_0002', 'case_0003'])
        >>> acc.per_case()["p2"]
        {'score': 0.4, 'label': 0}
    """

    def __init__(
        self,
        *,
        threshold: Any = None,
        n_bins: int = 10,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.threshold = threshold
        self.n_bins = n_bins
        self.class_names = class_names
        self.reset()

    def reset(self) -> None:
        """Forget every case."""
        self._case_ids: list[str] = []
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    @property
    def case_ids(self) -> list[str]:
        """Identifiers of the cases seen so far, in order."""
        return list(self._case_ids)

    def __len__(self) -> int:
        return len(self._case_ids)

    def update(self, scores: Any, labels: Any, case_ids: Sequence[object] | None = None) -> None:
        """Add a batch of cases.

        Args:
            scores: (B,) or (B, K) probabilities.
            labels: (B,) class indices or (B, K) multi-label 1, 0, or NaN / -1 (not known).
            case_ids: one identifier per case; numbered ``case_0000``... when None.
        """
        if _is_multilabel(scores, labels):
            s, y = parse_multilabel(scores, labels)
        else:
            inputs = parse_scores(scores, labels, probabilities=True)
            s, y = inputs.scores, inputs.labels
        if self._scores and (
            s.shape[1:] != self._scores[0].shape[1:]
            or y.shape[1:] != self._labels[0].shape[1:]
            or y.dtype != self._labels[0].dtype
        ):
            raise ConfigError(
                f"batch has scores {s.shape} and labels {y.shape}, unlike earlier batches "
                f"({self._scores[0].shape[1:]} per case); keep one task."
            )
        ids = next_case_ids(self._case_ids, int(y.shape[0]), case_ids)
        self._scores.append(s)
        self._labels.append(y)
        self._case_ids.extend(ids)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._case_ids:
            raise ConfigError("no cases yet: call update(scores, labels) before aggregating.")
        return np.concatenate(self._scores), np.concatenate(self._labels)

    def _metrics(self, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return classification_metrics(
            scores,
            labels,
            threshold=self.threshold,
            n_bins=self.n_bins,
            class_names=self.class_names,
        )

    def aggregate(self) -> dict[str, float]:
        """Every summary number over all cases (see :func:`classification_metrics`)."""
        return self._metrics(*self._arrays())

    def summary(
        self, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
    ) -> dict[str, Estimate]:
        """Every summary number with a bootstrap CI from the same resampled cases.

        Multi-label: a finding's ``n`` counts the cases whose label for it is known.
        """
        arrays = self._arrays()
        out = bootstrap_summary(
            arrays, self._metrics, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        labels = arrays[1]
        if _is_multilabel(*arrays):
            known = np.sum(~np.isnan(labels), axis=0)
            names = self.class_names or [f"label_{i}" for i in range(labels.shape[1])]
            counts = {str(name): int(n) for name, n in zip(names, known)}
            for key, est in out.items():
                finding = key.partition("/")[2]
                if finding in counts:
                    out[key] = replace(est, n=counts[finding])
        return out

    def per_case(self) -> dict[str, dict[str, Any]]:
        """``{case_id: {"score": ..., "label": ...}}`` (lists for multi-class/multi-label)."""
        scores, labels = self._arrays()
        return {
            cid: {"score": scores[i].tolist(), "label": labels[i].tolist()}
            for i, cid in enumerate(self._case_ids)
        }
