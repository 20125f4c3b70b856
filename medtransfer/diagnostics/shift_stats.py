"""Statistics of domain shift: how far apart two samples (two sites, two scanners) are.

- :func:`mmd2` and :func:`mmd_test`: the unbiased squared Maximum Mean Discrepancy with a Gaussian
  kernel and its permutation test (Gretton et al., "A kernel two-sample test", JMLR 2012): does
  the target site's feature distribution differ from the source's, and is that more than chance?
- :func:`frechet_distance`: the distance between Gaussians fitted to two feature samples (Heusel
  et al., NeurIPS 2017, the "FID" of image generation), as computed by ``pytorch-fid``.
- :func:`wasserstein_1` and :func:`intensity_percentiles`: one-dimensional comparisons of
  intensities (HU, normalised MR), the first thing to look at when a scanner or protocol changes.

Inputs are plain arrays: ``(n, d)`` feature matrices (one row per case, e.g. pooled encoder
embeddings) for the multivariate statistics, any array of values for the 1D ones.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> source, target = rng.normal(size=(40, 3)), rng.normal(1.0, size=(40, 3))
    >>> stat, p = mmd_test(source, target, permutations=200)
    >>> bool(stat > 0.1), p < 0.01
    (True, True)
    >>> round(wasserstein_1([0.0, 1.0, 2.0], [5.0, 6.0, 7.0]), 6)
    5.0
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from medtransfer.diagnostics.scores import feature_matrix
from medtransfer.errors import ConfigError

__all__ = [
    "frechet_distance",
    "intensity_percentiles",
    "median_bandwidth",
    "mmd2",
    "mmd_test",
    "wasserstein_1",
]

_PERMUTATION_CHUNK = 256  # permutations evaluated per matrix product (bounds memory)
_IMAGINARY_TOLERANCE = 1e-3  # pytorch-fid's: a larger imaginary part of sqrtm is an error


def _samples(array: object, name: str, *, min_samples: int = 2) -> np.ndarray:
    """``array`` as a finite float64 ``(n, d)`` matrix with ``n >= min_samples``, or ConfigError."""
    arr = feature_matrix(array, name)
    if arr.shape[0] < min_samples or arr.shape[1] < 1:
        raise ConfigError(
            f"{name} needs at least {min_samples} samples and 1 feature, got shape {arr.shape}."
        )
    return arr


def _pair(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = _samples(x, "x"), _samples(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ConfigError(
            f"x has {xa.shape[1]} features but y has {ya.shape[1]}; compare features of the same "
            "encoder and level."
        )
    return xa, ya


def _values(values: object, name: str) -> np.ndarray:
    """Any array (an image, a list of intensities) as a finite, non-empty float64 vector."""
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ConfigError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False).ravel()
    if arr.size == 0:
        raise ConfigError(f"{name} is empty; pass at least one value.")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ConfigError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); mask them out first "
            "(e.g. values[np.isfinite(values)])."
        )
    return arr


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||^2`` for every pair, clipped at 0 (the expansion can round below)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


def median_bandwidth(pooled: object) -> float:
    """The median heuristic: the median Euclidean distance between distinct rows of ``pooled``.

    Pairs ``i < j`` only (the zero self-distances are left out). When more than half the pairs
    coincide, the median of the non-zero distances; 1.0 if all rows are identical.

    Example:
        >>> median_bandwidth([[0.0], [1.0], [3.0]])  # distances 1, 3, 2
        2.0
    """
    z = _samples(pooled, "pooled")
    upper = np.triu_indices(z.shape[0], k=1)
    distances = np.sqrt(_squared_distances(z, z)[upper])
    sigma = float(np.median(distances))
    if sigma <= 0.0:
        positive = distances[distances > 0.0]
        sigma = float(np.median(positive)) if positive.size else 1.0
    return sigma


def _bandwidth(bandwidth: float | None, pooled: np.ndarray) -> float:
    if bandwidth is None:
        return median_bandwidth(pooled)
    sigma = float(bandwidth)
    if not np.isfinite(sigma) or sigma <= 0.0:
        raise ConfigError(
            f"bandwidth={bandwidth!r} must be a positive number (the kernel's sigma), or None "
            "for the median heuristic."
        )
    return sigma


def _rbf(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-_squared_distances(a, b) / (2.0 * sigma * sigma))


def _mmd2_from_kernel(kernel: np.ndarray, in_x: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD^2 for each row of ``in_x`` (``(P, n+m)`` 0/1 indicators of the x sample).

    With ``a`` the x indicator and ``b = 1 - a``: the within-x sum without the diagonal is
    ``a^T K a - a . diag(K)``; likewise for y; the cross sum is ``a^T K b``.
    """
    a = in_x.T.astype(np.float64)  # (N, P)
    b = 1.0 - a
    ka = kernel @ a
    diag = np.diag(kernel)[:, None]
    kxx = (a * ka).sum(0) - (a * diag).sum(0)
    kyy = (b * (kernel @ b)).sum(0) - (b * diag).sum(0)
    kxy = (b * ka).sum(0)
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m)


def mmd2(x: object, y: object, *, bandwidth: float | None = None) -> float:
    """Unbiased estimate of the squared MMD between samples ``x`` and ``y`` (Gaussian kernel).

    Gretton et al. (JMLR 2012), eq. 3, the U-statistic (the ``i == j`` terms excluded)::

        MMD^2_u = 1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
                  - 2/(nm) sum_{i,j} k(x_i, y_j),    k(a, b) = exp(-||a - b||^2 / (2 sigma^2))

    It is 0 in expectation when both samples come from one distribution, so an estimate can be
    slightly negative; it is positive when they differ.

    Args:
        x: ``(n, d)`` sample (rows are cases), ``n >= 2``.
        y: ``(m, d)`` sample, ``m >= 2``, same ``d``.
        bandwidth: the kernel's sigma; ``None`` takes the median heuristic: sigma = the median
            Euclidean distance between distinct rows of the pooled sample ``[x; y]``
            (:func:`median_bandwidth`).

    Returns:
        MMD^2 as a float.

    Raises:
        ConfigError: arrays that are not 2D, hold NaN/inf, have fewer than 2 rows, or differ in
            their number of features; a non-positive bandwidth.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> same = mmd2(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)))
        >>> shifted = mmd2(rng.normal(size=(50, 2)), rng.normal(2.0, size=(50, 2)))
        >>> abs(same) < 0.05, shifted > 0.3
        (True, True)
    """
    xa, ya = _pair(x, y)
    sigma = _bandwidth(bandwidth, np.vstack([xa, ya]))
    n, m = xa.shape[0], ya.shape[0]
    kxx, kyy, kxy = _rbf(xa, xa, sigma), _rbf(ya, ya, sigma), _rbf(xa, ya, sigma)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def mmd_test(
    x: object,
    y: object,
    *,
    permutations: int = 1000,
    seed: int = 0,
    bandwidth: float | None = None,
) -> tuple[float, float]:
    """MMD^2 (:func:`mmd2`) and its permutation p-value: is the difference more than chance?

    The bandwidth is fixed once from the pooled sample (median heuristic unless given), the
    kernel matrix of the pooled sample is computed once, and each permutation relabels which
    rows are "x" (the statistic is recomputed from the same matrix). The p-value is
    ``(1 + #{permuted MMD^2 >= observed}) / (1 + permutations)``, never 0; ties within rounding
    count as ``>=`` (conservative). With ``permutations=1000`` the smallest p-value is ~0.001.
    When the groups are so small that there are at most ``permutations`` distinct splits (6
    and 4 cases: 210), every split is used once instead: the exact p-value, whose smallest value
    is ``1 / #splits`` (random relabellings would repeat splits and make it noisy).

    Args:
        x: ``(n, d)`` sample, ``n >= 2``.
        y: ``(m, d)`` sample, ``m >= 2``, same ``d``.
        permutations: number of random relabellings (>= 1).
        seed: seed of the permutations (same seed, same p-value).
        bandwidth: the kernel's sigma, or ``None`` for the median heuristic.

    Returns:
        ``(mmd2, p_value)``.

    Raises:
        ConfigError: as :func:`mmd2`, or ``permutations`` that is not a positive integer.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(2)
        >>> _, p = mmd_test(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), permutations=200)
        >>> p > 0.05
        True
    """
    if isinstance(permutations, bool) or not isinstance(permutations, int | np.integer):
        raise ConfigError(f"permutations={permutations!r} must be a positive integer (e.g. 1000).")
    if permutations < 1:
        raise ConfigError(f"permutations={permutations!r} must be a positive integer (e.g. 1000).")
    xa, ya = _pair(x, y)
    pooled = np.vstack([xa, ya])
    n, m = xa.shape[0], ya.shape[0]
    total = n + m
    kernel = _rbf(pooled, pooled, _bandwidth(bandwidth, pooled))
    observed_x = np.zeros((1, total), dtype=bool)
    observed_x[0, :n] = True
    observed = float(_mmd2_from_kernel(kernel, observed_x, n, m)[0])
    tolerance = 1e-12 * max(1.0, abs(observed))
    splits = math.comb(total, n)
    if splits <= permutations:  # few cases: every split once, the exact permutation p-value
        exceed = 0
        combos = itertools.combinations(range(total), n)
        while chunk := list(itertools.islice(combos, _PERMUTATION_CHUNK)):
            in_x = np.zeros((len(chunk), total), dtype=bool)
            np.put_along_axis(in_x, np.asarray(chunk), True, axis=1)
            stats = _mmd2_from_kernel(kernel, in_x, n, m)
            exceed += int(np.count_nonzero(stats >= observed - tolerance))
        return observed, exceed / splits  # the observed split is one of them: p >= 1/splits
    rng = np.random.default_rng(seed)
    exceed, done = 0, 0
    while done < permutations:
        size = min(_PERMUTATION_CHUNK, permutations - done)
        order = np.argsort(rng.random((size, total)), axis=1)
        in_x = np.zeros((size, total), dtype=bool)
        np.put_along_axis(in_x, order[:, :n], True, axis=1)
        stats = _mmd2_from_kernel(kernel, in_x, n, m)
        exceed += int(np.count_nonzero(stats >= observed - tolerance))
        done += size
    return observed, (1 + exceed) / (1 + permutations)


def frechet_distance(x: object, y: object, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to ``x`` and ``y`` (the "FID" formula).

    ``||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^{1/2})`` with sample means and covariances
    (Heusel et al., NeurIPS 2017), computed as ``pytorch-fid`` does: ``scipy.linalg.sqrtm`` of
    the product; when the product is singular (e.g. fewer samples than features: scipy warns)
    or its root is not finite, ``eps * I`` is added to both covariances; a negligible imaginary part of the square root
    (round-off) is dropped. A distance that rounds below 0 is returned as 0.

    Args:
        x: ``(n, d)`` sample, ``n >= 2``.
        y: ``(m, d)`` sample, ``m >= 2``, same ``d``.
        eps: the diagonal offset used when the covariance product is singular.

    Returns:
        The squared Fréchet distance (in squared feature units), as a float.

    Raises:
        ConfigError: as :func:`mmd2`; or covariances so ill-conditioned that the matrix square
            root has a large imaginary part (use more samples than features, or a larger eps).

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
        >>> round(frechet_distance(x, x + 3.0), 6)  # same covariance: the squared mean shift
        18.0
    """
    from scipy import linalg

    xa, ya = _pair(x, y)
    if not np.isfinite(eps) or eps < 0:
        raise ConfigError(f"eps={eps!r} must be a small non-negative number (e.g. 1e-6).")
    mu_x, mu_y = xa.mean(0), ya.mean(0)
    s_x = np.atleast_2d(np.cov(xa, rowvar=False))
    s_y = np.atleast_2d(np.cov(ya, rowvar=False))
    with warnings.catch_warnings(record=True) as caught:  # scipy's "singular" is our signal
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_x @ s_y)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.isfinite(covmean).all():
        offset = np.eye(s_x.shape[0]) * eps
        covmean = linalg.sqrtm((s_x + offset) @ (s_y + offset))
    if np.iscomplexobj(covmean):
        imaginary = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imaginary > _IMAGINARY_TOLERANCE:
            raise ConfigError(
                f"The covariances are too ill-conditioned for the Fréchet distance (imaginary "
                f"part {imaginary:.3g} in the matrix square root); use more samples than "
                f"features ({xa.shape[1]}), reduce the features (e.g. PCA), or a larger eps."
            )
        covmean = covmean.real
    diff = mu_x - mu_y
    value = diff @ diff + np.trace(s_x) + np.trace(s_y) - 2.0 * np.trace(covmean)
    return max(0.0, float(value))


def wasserstein_1(a: object, b: object) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1D samples of values.

    The average distance values must move to turn one empirical distribution into the other,
    in the values' units (HU for CT): a robust summary of an intensity shift between sites.
    ``scipy.stats.wasserstein_distance``; arrays of any shape are flattened.

    Raises:
        ConfigError: an empty sample, NaN/inf values, or non-numeric data.

    Example:
        >>> round(wasserstein_1([0.0, 10.0], [1.0, 11.0]), 6)
        1.0
    """
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(_values(a, "a"), _values(b, "b")))


def intensity_percentiles(
    values: object, q: Sequence[float] = (1, 5, 25, 50, 75, 95, 99)
) -> dict[str, float]:
    """Percentiles of intensities (as nnU-Net's dataset fingerprint records them).

    Args:
        values: intensities of any shape (an image, or voxels inside a mask), flattened.
        q: percentiles in [0, 100].

    Returns:
        ``{"p1": ..., "p5": ..., "p50": ..., "p99.5": ...}`` (keys ``f"p{q:g}"``, plain floats,
        JSON-ready).

    Raises:
        ConfigError: empty or non-finite values, a percentile outside [0, 100], an empty ``q``.

    Example:
        >>> intensity_percentiles(range(101), q=(5, 50, 99.5))
        {'p5': 5.0, 'p50': 50.0, 'p99.5': 99.5}
    """
    arr = _values(values, "values")
    levels = np.asarray(q, dtype=np.float64).ravel()
    if levels.size == 0 or not np.isfinite(levels).all() or (levels < 0).any() or (levels > 100).any():  # fmt: skip
        raise ConfigError(f"q={q!r} must be one or more percentiles in [0, 100].")
    found = np.percentile(arr, levels)
    return {f"p{level:g}": float(value) for level, value in zip(levels, found)}
