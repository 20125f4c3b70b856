"""Bootstrap confidence intervals by resampling cases (percentile method, seeded).

Cases, not voxels, are the unit of resampling: each replicate draws N cases with replacement
(``numpy.random.default_rng(seed)``), recomputes the statistic, and the interval is the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the replicates (linear
interpolation; the nearest replicate when some replicates are infinite). The point estimate is
the statistic of the original cases, not the mean of the replicates. Replicates where the
statistic is undefined (NaN, e.g. AUROC of a resample with one class only) are left out.

For per-case values (one number per case) NaN cases, such as a class absent from both masks,
are dropped first, and ``n`` counts the cases that remain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError

__all__ = ["Estimate", "bootstrap_ci", "bootstrap_columns", "bootstrap_summary"]


@dataclass(frozen=True, repr=False)
class Estimate:
    """A summary number with its bootstrap confidence interval.

    Example:
        >>> Estimate(0.8732, 0.8511, 0.8944, 40)
        0.873 (95% CI 0.851-0.894, n=40)
    """

    value: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def __repr__(self) -> str:
        sep = "-" if self.low >= 0 else " to "
        return (
            f"{self.value:.3f} ({self.confidence * 100:g}% CI {self.low:.3f}{sep}{self.high:.3f}, "
            f"n={self.n})"
        )

    def as_dict(self) -> dict[str, float]:
        """Plain dictionary for tables and JSON."""
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "confidence": self.confidence,
        }


def _check(n_resamples: int, confidence: float) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}.")


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    kept = replicates[~np.isnan(replicates)]
    if kept.size == 0:
        return float("nan"), float("nan")
    method = "linear" if np.all(np.isfinite(kept)) else "inverted_cdf"
    q = (1 - confidence) / 2
    low, high = np.quantile(kept, [q, 1 - q], method=method)
    return float(low), float(high)


def _as_cases(data: Any) -> tuple[tuple[np.ndarray, ...], int]:
    arrays = tuple(np.asarray(a) for a in data) if isinstance(data, tuple) else (np.asarray(data),)
    if any(a.ndim == 0 for a in arrays):
        raise ConfigError("bootstrap data must have one row per case (at least one axis).")
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ConfigError(
            f"bootstrap arrays have different numbers of cases {[a.shape[0] for a in arrays]}."
        )
    return arrays, n


def _replicate_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def bootstrap_summary(
    data: Any,
    statistic: Callable[..., Mapping[str, float]],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Bootstrap several numbers at once, computed from the same resampled cases.

    Args:
        data: an array with one row per case, or a tuple of such arrays (e.g. scores, labels),
            resampled together.
        statistic: called with the resampled array(s), returns ``{name: number}``.
        n_resamples: number of bootstrap replicates.
        confidence: coverage of the interval (0.95 for a 95% CI).
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same intervals.

    Example:
        >>> import numpy as np
        >>> x = np.arange(10.0)
        >>> out = bootstrap_summary(x, lambda v: {"mean": v.mean(), "max": v.max()}, n_resamples=200)
        >>> out["mean"].value, out["max"].value
        (4.5, 9.0)
    """
    _check(n_resamples, confidence)
    arrays, n = _as_cases(data)
    if n == 0:
        raise ConfigError("bootstrap needs at least one case.")

    def call(index: np.ndarray | None) -> Mapping[str, float]:
        picked = arrays if index is None else tuple(a[index] for a in arrays)
        return statistic(*picked) if isinstance(data, tuple) else statistic(picked[0])

    point = dict(call(None))
    reps = {name: np.empty(n_resamples) for name in point}
    for r, index in enumerate(_replicate_indices(n, n_resamples, seed)):
        values = call(index)
        for name in point:
            reps[name][r] = float(values[name])
    return {
        name: Estimate(float(point[name]), *_interval(reps[name], confidence), n, confidence)
        for name in point
    }


def bootstrap_ci(
    data: Any,
    statistic: Callable[..., float] | None = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap CI of a statistic over cases.

    Args:
        data: per-case values (N,) when ``statistic`` is None (NaN cases dropped, mean taken),
            else an array or tuple of arrays with one row per case passed to ``statistic``.
        statistic: function of the resampled case data returning a number; None for the mean.
        n_resamples: number of bootstrap replicates (2000 by default).
        confidence: coverage of the interval (0.95 for a 95% CI).
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same interval.

    Returns:
        :class:`Estimate` with the statistic of all cases and the interval.

    Example:
        >>> import numpy as np
        >>> dice_per_case = np.array([0.91, 0.85, np.nan, 0.78, 0.88, 0.93])
        >>> est = bootstrap_ci(dice_per_case, seed=0)
        >>> est.n, round(est.value, 3), est.low <= est.value <= est.high
        (5, 0.87, True)
        >>> from medtransfer.evaluation import auroc
        >>> scores, labels = np.array([0.2, 0.7, 0.4, 0.9, 0.1, 0.6]), np.array([0, 1, 0, 1, 0, 1])
        >>> bootstrap_ci((scores, labels), auroc, n_resamples=200).value
        1.0
    """
    if statistic is not None:
        out = bootstrap_summary(
            data,
            lambda *a: {"value": statistic(*a)},
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
        return out["value"]
    _check(n_resamples, confidence)
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigError(
            f"per-case values must be 1-D, got shape {values.shape}; use bootstrap_columns for "
            "a (cases, classes) table."
        )
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, confidence)
    reps = values[_replicate_indices(values.size, n_resamples, seed)].mean(axis=1)
    return Estimate(
        float(values.mean()), *_interval(reps, confidence), int(values.size), confidence
    )


def bootstrap_columns(
    values: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Estimate]:
    """Mean and CI of each column of a (cases, classes) table, NaN cases dropped per column.

    Args:
        values: (N, C) per-case values, e.g. the output of :func:`medtransfer.evaluation.dice`.
        n_resamples: number of bootstrap replicates.
        confidence: coverage of the interval.
        seed: seed, the same for every column.

    Example:
        >>> import numpy as np
        >>> table = np.array([[0.9, np.nan], [0.8, 0.5], [0.7, 0.7]])
        >>> [e.n for e in bootstrap_columns(table, n_resamples=100)]
        [3, 2]
    """
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 2:
        raise ConfigError(f"expected a (cases, classes) table, got shape {table.shape}.")
    return [
        bootstrap_ci(table[:, c], n_resamples=n_resamples, confidence=confidence, seed=seed)
        for c in range(table.shape[1])
    ]
