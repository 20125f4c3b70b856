"""Tests of medtransfer.diagnostics.shift_stats: by-hand references, null and shifted behaviour, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from medtransfer.diagnostics.shift_stats import (
    frechet_distance,
    intensity_percentiles,
    median_bandwidth,
    mmd2,
    mmd_test,
    wasserstein_1,
)
from medtransfer.errors import ConfigError


def _brute_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Gretton et al. 2012, eq. 3, literally: double loops, i != j within each sample.

    MMD^2_u = 1/(n(n-1)) sum_{i!=j} k(x_i,x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i,y_j)
              - 2/(nm) sum_{i,j} k(x_i,y_j),   k(a,b) = exp(-||a-b||^2 / (2 sigma^2))
    """

    def k(a, b):
        return math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b)) / (2 * sigma**2))

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)


X_TINY = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
Y_TINY = np.array([[1.0, 1.0], [3.0, 1.0], [2.0, 2.0], [0.5, -1.0]])


def test_mmd2_matches_brute_force_double_loop():
    for sigma in (0.5, 1.0, 3.0):
        expected = _brute_mmd2(X_TINY.tolist(), Y_TINY.tolist(), sigma)
        assert mmd2(X_TINY, Y_TINY, bandwidth=sigma) == pytest.approx(expected, rel=1e-12)


def test_median_heuristic_is_median_of_pooled_pairwise_distances():
    pooled = np.vstack([X_TINY, Y_TINY])
    distances = [
        np.linalg.norm(pooled[i] - pooled[j])
        for i in range(len(pooled))
        for j in range(i + 1, len(pooled))
    ]
    sigma = float(np.median(distances))
    assert median_bandwidth(pooled) == pytest.approx(sigma)
    assert mmd2(X_TINY, Y_TINY) == pytest.approx(_brute_mmd2(X_TINY, Y_TINY, sigma), rel=1e-12)


def test_median_heuristic_with_repeated_rows():
    assert median_bandwidth([[1.0]] * 4 + [[4.0]]) == 3.0  # 6 of the 10 pairs coincide
    assert median_bandwidth([[2.0, 2.0]] * 3) == 1.0


def test_mmd2_near_zero_for_same_distribution_positive_for_shift():
    rng = np.random.default_rng(0)
    same = mmd2(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)))
    shifted = mmd2(rng.normal(size=(200, 3)), rng.normal(1.0, size=(200, 3)))
    assert abs(same) < 0.01
    assert shifted > 0.1
    # unbiased: over repetitions the null estimate averages ~0 and takes both signs
    nulls = [mmd2(rng.normal(size=(20, 2)), rng.normal(size=(20, 2))) for _ in range(30)]
    assert min(nulls) < 0 < max(nulls)
    assert abs(np.mean(nulls)) < 0.02


def test_mmd_test_statistic_is_mmd2_and_p_value_bounds():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(25, 4)), rng.normal(size=(30, 4))
    stat, p = mmd_test(x, y, permutations=99)
    assert stat == pytest.approx(mmd2(x, y), abs=1e-12)
    assert 1 / 100 <= p <= 1.0
    assert mmd_test(x, y, permutations=99) == (stat, p)  # same seed, same answer
    stat_fixed, _ = mmd_test(x, y, permutations=10, bandwidth=2.0)
    assert stat_fixed == pytest.approx(mmd2(x, y, bandwidth=2.0), abs=1e-12)


def test_mmd_test_same_distribution_not_rejected_and_roughly_uniform():
    rng = np.random.default_rng(0)
    _, p = mmd_test(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)), permutations=500, seed=0)
    assert p > 0.05
    p_values = []
    for seed in range(40):
        data = np.random.default_rng(100 + seed)
        x, y = data.normal(size=(20, 2)), data.normal(size=(20, 2))
        p_values.append(mmd_test(x, y, permutations=200, seed=seed)[1])
    p_values = np.array(p_values)
    assert np.mean(p_values < 0.05) <= 0.15  # nominal 5%: ~2 of 40
    assert 0.3 < np.mean(p_values) < 0.7  # uniform on (0, 1) averages 0.5


def test_mmd_test_shifted_distribution_rejected():
    rng = np.random.default_rng(1)
    stat, p = mmd_test(rng.normal(size=(40, 3)), rng.normal(1.0, size=(40, 3)), permutations=500)
    assert stat > 0.1
    assert p < 0.01
    assert p == pytest.approx(1 / 501)  # no permutation comes close


def _exact_gaussian_sample(mean, variances, n, seed):
    """Rows whose sample mean and (ddof=1) covariance are exactly ``mean`` and diag(variances)."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = (
        z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T
    )  # whitened: cov = I
    return np.asarray(mean) + z * np.sqrt(variances)


def test_frechet_matches_closed_form_for_diagonal_gaussians():
    mu1, s1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    mu2, s2 = np.array([1.0, 1.5, 0.0]), np.array([2.0, 1.0, 0.25])
    x = _exact_gaussian_sample(mu1, s1, 50, seed=0)
    y = _exact_gaussian_sample(mu2, s2, 70, seed=1)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(x, y) == pytest.approx(closed, rel=1e-9)
    # large samples of the distributions themselves come close to the same number
    rng = np.random.default_rng(2)
    big_x = rng.normal(mu1, np.sqrt(s1), size=(200_000, 3))
    big_y = rng.normal(mu2, np.sqrt(s2), size=(200_000, 3))
    assert frechet_distance(big_x, big_y) == pytest.approx(closed, rel=0.02)


def test_frechet_one_feature_and_identical_samples():
    x = _exact_gaussian_sample([2.0], [9.0], 30, seed=4)
    y = _exact_gaussian_sample([0.0], [1.0], 30, seed=5)
    assert frechet_distance(x, y) == pytest.approx((2 - 0) ** 2 + (3 - 1) ** 2, rel=1e-9)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_frechet_singular_covariances_stay_finite():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(5, 20)), rng.normal(size=(6, 20))  # fewer samples than features
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # singular product: eps added quietly, as pytorch-fid does
        value = frechet_distance(x, y)
        assert frechet_distance(np.zeros((4, 20)), np.zeros((4, 20))) == 0.0
    assert np.isfinite(value) and value > 0
    # eps makes a negligible difference where the product is not singular
    big_x, big_y = rng.normal(size=(200, 3)), rng.normal(1.0, size=(300, 3))
    assert frechet_distance(big_x, big_y, eps=1e-6) == pytest.approx(
        frechet_distance(big_x, big_y, eps=0.0)
    )


def test_wasserstein_of_shifted_identical_samples_is_the_shift():
    values = np.random.default_rng(7).normal(size=1000) * 100.0
    assert wasserstein_1(values, values + 37.5) == pytest.approx(37.5, rel=1e-12)
    assert wasserstein_1(values.reshape(10, 100), values) == pytest.approx(0.0, abs=1e-12)


def test_intensity_percentiles():
    found = intensity_percentiles(np.arange(101.0).reshape(1, 101))
    assert found == {"p1": 1.0, "p5": 5.0, "p25": 25.0, "p50": 50.0, "p75": 75.0, "p95": 95.0, "p99": 99.0}  # fmt: skip
    assert intensity_percentiles([0.0, 10.0], q=[50, 0.5]) == {"p50": 5.0, "p0.5": 0.05}


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros(5), np.zeros((5, 1)), "2D array"),
        (np.zeros((5, 2, 1)), np.zeros((5, 2)), "2D array"),
        (np.zeros((5, 2)), np.zeros((5, 3)), "x has 2 features but y has 3"),
        (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2 samples"),
        (np.array([[np.nan, 0.0], [1.0, 1.0]]), np.zeros((3, 2)), "1 non-finite"),
        (np.array([["a"], ["b"]]), np.zeros((2, 1)), "real numbers"),
    ],
)
def test_bad_samples_are_config_errors(x, y, match):
    for function in (mmd2, mmd_test, frechet_distance):
        with pytest.raises(ConfigError, match=match):
            function(x, y)


def test_bad_arguments_are_config_errors():
    x = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="bandwidth"):
        mmd2(x, x, bandwidth=0.0)
    with pytest.raises(ConfigError, match="permutations"):
        mmd_test(x, x, permutations=0)
    with pytest.raises(ConfigError, match="permutations"):
        mmd_test(x, x, permutations=10.0)
    with pytest.raises(ConfigError, match="non-finite"):
        wasserstein_1([0.0, np.nan], [1.0])
    with pytest.raises(ConfigError, match="empty"):
        wasserstein_1([], [1.0])
    with pytest.raises(ConfigError, match="percentiles"):
        intensity_percentiles([1.0, 2.0], q=(50, 101))
    with pytest.raises(ConfigError, match="percentiles"):
        intensity_percentiles([1.0, 2.0], q=())


def test_small_groups_get_the_exact_permutation_p_value():
    """6 vs 4 cases have 210 splits: each is used once, so perfectly separated groups get
    p = 1/210 whatever the seed (random relabellings would repeat splits)."""
    from medtransfer.diagnostics.shift_stats import mmd_test

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)) + 10.0
    p_values = [mmd_test(x, y, permutations=999, seed=seed)[1] for seed in range(5)]
    assert p_values == pytest.approx([1 / 210] * 5)
    # more splits than permutations: random relabellings, p >= 1 / (1 + permutations)
    _, p = mmd_test(x, y, permutations=99, seed=0)
    assert p == pytest.approx(1 / 100)
