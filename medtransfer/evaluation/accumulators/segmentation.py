"""Stateful segmentation metrics for evaluation loops (MONAI's Cumulative style).

``update(pred, target)`` computes the chosen metrics of a batch and keeps one row per case;
``aggregate()`` gives the mean per class over cases (NaN cases, where a class is absent from
both masks, are left out and counted by ``empty_counts()``); ``summary()`` adds bootstrap
confidence intervals over cases; ``per_case()`` is the table keyed by case_id; ``reset()``
starts again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.accumulators.case_ids import next_case_ids
from medtransfer.evaluation.bootstrap import Estimate, bootstrap_columns
from medtransfer.evaluation.metrics.mask_inputs import prepare_segmentation
from medtransfer.evaluation.metrics.overlap import overlap_from_pair
from medtransfer.evaluation.metrics.surface import SURFACE_METRICS, surface_metrics_from_pair

__all__ = ["SEGMENTATION_METRICS", "SegmentationAccumulator"]

SEGMENTATION_METRICS = ("dice", "iou", *SURFACE_METRICS)


def _pad(rows: list[np.ndarray], fill: float | bool) -> np.ndarray:
    """Stack (B_i, C_i) blocks, padding missing trailing classes (absent from a batch)."""
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=fill) for r in rows]
    return np.concatenate(padded, axis=0)


class SegmentationAccumulator:
    """Collects per-case, per-class segmentation metrics over batches.

    Args:
        metrics: names from ``("dice", "iou", "hd95", "assd", "nsd")``; default: all, with
            ``"nsd"`` only when ``tolerance_mm`` is given.
        tolerance_mm: surface Dice tolerance in mm (one number or one per class column).
        num_classes: classes including background. When None it is inferred per batch and
            classes missing from a batch are padded with NaN (absent from both masks).
        include_background: keep class 0 as the first column.
        empty_distance: HD95/ASSD when exactly one mask is empty: ``"diagonal"`` or a number.

    Example:
        >>> import numpy as np
        >>> acc = SegmentationAccumulator(metrics=("dice", "hd95"))
        >>> ref = np.zeros((2, 1, 8, 8), dtype=np.int64); ref[:, 0, 2:6, 2:6] = 1
        >>> _ = acc.update(ref, ref, spacing=(1.0, 1.0), case_ids=["a", "b"])
        >>> {k: v.tolist() for k, v in acc.aggregate().items()}
        {'dice': [1.0], 'hd95': [0.0]}
        >>> acc.per_case()["b"]["dice"].tolist()
        [1.0]
        >>> acc.summary(n_resamples=100)["dice"]
        [1.000 (95% CI 1.000-1.000, n=2)]
    """

    def __init__(
        self,
        metrics: Sequence[str] | None = None,
        *,
        tolerance_mm: float | Sequence[float] | None = None,
        num_classes: int | None = None,
        include_background: bool = False,
        empty_distance: float | str = "diagonal",
    ) -> None:
        if metrics is None:
            metrics = SEGMENTATION_METRICS if tolerance_mm is not None else SEGMENTATION_METRICS[:4]
        if isinstance(metrics, str):
            metrics = (metrics,)
        unknown = sorted(set(metrics) - set(SEGMENTATION_METRICS))
        if unknown:
            raise ConfigError(f"unknown metrics {unknown}; choose from {SEGMENTATION_METRICS}.")
        if "nsd" in metrics and tolerance_mm is None:
            raise ConfigError("metric 'nsd' (surface Dice) needs tolerance_mm, e.g. 2.0 mm.")
        self.metrics = tuple(metrics)
        self.tolerance_mm = tolerance_mm
        self.num_classes = num_classes
        self.include_background = include_background
        self.empty_distance = empty_distance
        self.reset()

    def reset(self) -> None:
        """Forget every case."""
        self._case_ids: list[str] = []
        self._rows: dict[str, list[np.ndarray]] = {m: [] for m in self.metrics}
        self._pred_present: list[np.ndarray] = []
        self._target_present: list[np.ndarray] = []

    @property
    def case_ids(self) -> list[str]:
        """Identifiers of the cases seen so far, in order."""
        return list(self._case_ids)

    def __len__(self) -> int:
        return len(self._case_ids)

    def update(
        self,
        pred: Any,
        target: Any,
        spacing: Any = None,
        case_ids: Sequence[object] | None = None,
    ) -> dict[str, np.ndarray]:
        """Add a batch; returns its ``{metric: (B, C)}`` values.

        Args:
            pred: prediction label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
            target: reference, same layouts.
            spacing: voxel size in mm (number, one per axis, or one row per case); None uses
                ``meta["spacing"]`` of MetaTensors, else 1.
            case_ids: one identifier per case; numbered ``case_0000``... when None.
        """
        pair = prepare_segmentation(
            pred, target, spacing, self.num_classes, self.include_background
        )
        ids = next_case_ids(self._case_ids, pair.pred.shape[0], case_ids)
        values: dict[str, np.ndarray] = {}
        for name in ("dice", "iou"):
            if name in self.metrics:
                values[name] = overlap_from_pair(pair, name)
        surface = [m for m in self.metrics if m in SURFACE_METRICS]
        if surface:
            values.update(
                surface_metrics_from_pair(pair, surface, self.tolerance_mm, self.empty_distance)
            )
        for name in self.metrics:
            self._rows[name].append(values[name])
        self._pred_present.append(pair.pred_present)
        self._target_present.append(pair.target_present)
        self._case_ids.extend(ids)
        return {name: values[name] for name in self.metrics}

    def _require_cases(self) -> None:
        if not self._case_ids:
            raise ConfigError("no cases yet: call update(pred, target) before aggregating.")

    def values(self, metric: str) -> np.ndarray:
        """All cases of one metric, ``(cases, classes)``."""
        if metric not in self.metrics:
            raise ConfigError(f"metric {metric!r} is not collected; collected: {self.metrics}.")
        self._require_cases()
        return _pad(self._rows[metric], np.nan)

    def aggregate(self) -> dict[str, np.ndarray]:
        """Mean over cases per class, NaN cases left out: ``{metric: (classes,)}``."""
        self._require_cases()
        out = {}
        for name in self.metrics:
            table = self.values(name)
            counts = np.sum(~np.isnan(table), axis=0)
            sums = np.nansum(table, axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return out

    def empty_counts(self) -> dict[str, np.ndarray]:
        """Cases per class where both, only the prediction, or only the reference are empty."""
        self._require_cases()
        p, t = _pad(self._pred_present, False), _pad(self._target_present, False)
        return {
            "both_empty": np.sum(~p & ~t, axis=0),
            "pred_empty": np.sum(~p & t, axis=0),
            "target_empty": np.sum(p & ~t, axis=0),
        }

    def per_case(self) -> dict[str, dict[str, np.ndarray]]:
        """``{case_id: {metric: (classes,)}}``."""
        self._require_cases()
        tables = {name: self.values(name) for name in self.metrics}
        return {
            cid: {name: tables[name][i] for name in self.metrics}
            for i, cid in enumerate(self._case_ids)
        }

    def summary(
        self, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
    ) -> dict[str, list[Estimate]]:
        """Mean per class with a bootstrap CI over cases: ``{metric: [Estimate per class]}``.

        Infinite values (``empty_distance=math.inf``) make the mean infinite; the interval
        then comes from the nearest replicates (see :mod:`medtransfer.evaluation.bootstrap`).
        """
        self._require_cases()
        return {
            name: bootstrap_columns(
                self.values(name), n_resamples=n_resamples, confidence=confidence, seed=seed
            )
            for name in self.metrics
        }
