"""Tests of medtransfer.diagnostics.scores: values against by-hand references, orderings, errors."""

from __future__ import annotations

import numpy as np
import pytest

from medtransfer.diagnostics.scores import (
    NEEDS_SOURCE_PROBS,
    SCORES,
    h_score,
    leep,
    linear_probe,
    logme,
)
from medtransfer.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# helpers


def _naive_logme(f: np.ndarray, y: np.ndarray) -> float:
    """LogME in its most literal form: explicit inverse and determinant of A = aI + b F^T F.

    MacKay's fixed point: m = b A^-1 F^T t, gamma = tr(I - a A^-1), a = gamma / |m|^2,
    b = (N - gamma) / |t - F m|^2 (with the reference's +1e-5 in both denominators), iterated to
    convergence; then the log evidence at (a, b), per sample, averaged over one-hot columns.
    """
    n, d = f.shape
    evidences = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(10_000):
            a_inv = np.linalg.inv(alpha * np.eye(d) + beta * f.T @ f)
            m = beta * a_inv @ f.T @ t
            gamma = np.trace(np.eye(d) - alpha * a_inv)
            new_alpha = gamma / (m @ m + 1e-5)
            new_beta = (n - gamma) / (np.sum((t - f @ m) ** 2) + 1e-5)
            done = abs(new_alpha / new_beta - alpha / beta) <= 1e-13 * alpha / beta
            alpha, beta = new_alpha, new_beta
            if done:
                break
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.inv(a) @ f.T @ t
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - beta / 2 * np.sum((t - f @ m) ** 2)
            - alpha / 2 * (m @ m)
            - 0.5 * np.log(np.linalg.det(a))
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def _blobs(n_classes: int, separable: bool, seed: int = 0, per_class: int = 30, dim: int = 6):
    """Features (separable Gaussian blobs or pure noise) with the same balanced labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    feats = rng.normal(size=(labels.size, dim))
    if separable:
        feats += 4.0 * np.eye(n_classes, dim)[labels]
    return feats, labels


def _source_probs(labels: np.ndarray, informative: bool, seed: int = 0, n_source: int = 5):
    """Softmax source probabilities: informative ones peak on a source class tied to the label."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(labels.size, n_source))
    if informative:
        logits += 4.0 * np.eye(n_source)[labels]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _inputs(name: str, n_classes: int, good: bool, seed: int = 0):
    feats, labels = _blobs(n_classes, separable=good, seed=seed)
    if name in NEEDS_SOURCE_PROBS:
        return _source_probs(labels, informative=good, seed=seed), labels
    return feats, labels


# ---------------------------------------------------------------------------------------------
# LogME


def test_logme_matches_literal_evidence_formula():
    rng = np.random.default_rng(42)
    f = rng.normal(size=(20, 3))
    y = rng.integers(0, 3, size=20)
    assert logme(f, y) == pytest.approx(_naive_logme(f, y), abs=1e-6)


def test_logme_matches_literal_formula_when_fewer_samples_than_dims():
    # N < D: F^T F has D - N zero eigenvalues; each still contributes log(alpha) to log|A|.
    rng = np.random.default_rng(7)
    f = rng.normal(size=(6, 10))
    y = np.array([0, 1, 0, 1, 1, 0])
    assert logme(f, y) == pytest.approx(_naive_logme(f, y), abs=1e-6)


def test_logme_prefers_labels_that_are_linear_in_features():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(80, 5))
    y = (f @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) > 0).astype(int)
    assert logme(f, y) > logme(f, rng.permutation(y)) + 0.05


def test_logme_rejects_all_zero_features():
    with pytest.raises(ConfigError, match="all zero"):
        logme(np.zeros((10, 3)), np.repeat([0, 1], 5))


# ---------------------------------------------------------------------------------------------
# H-score


def test_h_score_matches_direct_formula_without_shrinkage():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(12, 3)) + 5.0
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    g = np.stack([f[y == c].mean(axis=0) for c in y])  # E[f | y] for each sample
    expected = np.trace(np.linalg.pinv(np.cov(f, rowvar=False)) @ np.cov(g, rowvar=False))
    assert h_score(f, y, shrinkage=False) == pytest.approx(expected, rel=1e-9)


def test_h_score_shrinkage_matches_ledoit_wolf_formula():
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(4)
    f = rng.normal(size=(15, 4))
    y = np.repeat([0, 1, 2], 5)
    centred = f - f.mean(axis=0)
    cov, shrink = ledoit_wolf(centred)
    g = np.stack([centred[y == c].mean(axis=0) for c in y])
    expected = np.trace(np.linalg.pinv(cov) @ ((1 - shrink) * np.cov(g, rowvar=False)))
    assert h_score(f, y) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_h_score_shrinkage_changes_value_but_keeps_ordering(n_classes):
    good, labels = _blobs(n_classes, separable=True)
    noise, _ = _blobs(n_classes, separable=False)
    raw_good, raw_noise = (
        h_score(good, labels, shrinkage=False),
        h_score(noise, labels, shrinkage=False),
    )
    reg_good, reg_noise = h_score(good, labels), h_score(noise, labels)
    assert reg_good != pytest.approx(raw_good, rel=1e-3)
    assert raw_good > raw_noise
    assert reg_good > reg_noise


# ---------------------------------------------------------------------------------------------
# LEEP


def test_leep_matches_hand_computed_example():
    # theta: 3 samples x 2 source classes; targets y = [0, 1, 0].
    # P(y, z) = (1/3) sum_i theta_iz [y_i = y]:
    #   P(0, z0) = (0.9 + 0.7)/3 = 1.6/3   P(0, z1) = (0.1 + 0.3)/3 = 0.4/3
    #   P(1, z0) = 0.2/3                   P(1, z1) = 0.8/3
    # P(z0) = 1.8/3, P(z1) = 1.2/3, so P(0|z0) = 8/9, P(0|z1) = 1/3, P(1|z0) = 1/9, P(1|z1) = 2/3.
    # sample 1: 0.9 * 8/9 + 0.1 * 1/3 = 0.8 + 1/30 = 5/6
    # sample 2: 0.2 * 1/9 + 0.8 * 2/3 = 1/45 + 8/15 = 5/9
    # sample 3: 0.7 * 8/9 + 0.3 * 1/3 = 28/45 + 1/10 = 13/18
    # LEEP = (log 5/6 + log 5/9 + log 13/18) / 3 = -0.365177...
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    expected = (np.log(5 / 6) + np.log(5 / 9) + np.log(13 / 18)) / 3
    assert leep(probs, np.array([0, 1, 0])) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(-0.365177, abs=1e-6)


def test_leep_of_a_perfect_source_is_zero():
    labels = np.array([0, 1, 2, 2, 1, 0, 0])
    assert leep(np.eye(3)[labels], labels) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_leep_is_never_positive(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(4, 0.3), size=25)
    labels = rng.integers(0, 3, size=25)
    labels[:3] = [0, 1, 2]
    assert leep(probs, labels) <= 1e-12


# ---------------------------------------------------------------------------------------------
# Linear probe


def test_linear_probe_separable_blobs_near_perfect_and_noise_near_chance():
    good, labels = _blobs(2, separable=True, per_class=40)
    noise, _ = _blobs(2, separable=False, per_class=40)
    assert linear_probe(good, labels) >= 0.97
    assert abs(linear_probe(noise, labels) - 0.5) <= 0.15


def test_linear_probe_is_deterministic_given_seed():
    noise, labels = _blobs(2, separable=False, per_class=20)
    assert linear_probe(noise, labels, seed=3) == linear_probe(noise, labels, seed=3)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("metric", ["accuracy", "auroc"])
def test_linear_probe_other_metrics(metric, n_classes):
    good, labels = _blobs(n_classes, separable=True, per_class=15)
    noise, _ = _blobs(n_classes, separable=False, per_class=15)
    assert linear_probe(good, labels, metric=metric) >= 0.95
    assert linear_probe(noise, labels, metric=metric) < 0.8


def test_linear_probe_reduces_folds_to_smallest_class():
    feats, labels = _blobs(2, separable=True, per_class=10)
    labels = labels.copy()
    labels[:8] = 1  # class 0 keeps 2 samples: 2 folds instead of 5
    assert 0.0 <= linear_probe(feats, labels, folds=5) <= 1.0


def test_linear_probe_errors():
    feats, labels = _blobs(2, separable=True, per_class=5)
    with pytest.raises(ConfigError, match="at least 2"):
        linear_probe(feats, np.r_[labels[:-1], 9])
    with pytest.raises(ConfigError, match="metric"):
        linear_probe(feats, labels, metric="f1")
    with pytest.raises(ConfigError, match="folds"):
        linear_probe(feats, labels, folds=1)


# ---------------------------------------------------------------------------------------------
# Properties shared by every score


def test_registry():
    assert set(SCORES) == {"logme", "h_score", "leep", "linear_probe"}
    assert set(NEEDS_SOURCE_PROBS) == {"leep"}


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", sorted(SCORES))
def test_separable_scores_higher_than_noise(name, n_classes):
    good, labels = _inputs(name, n_classes, good=True)
    noise, noise_labels = _inputs(name, n_classes, good=False)
    np.testing.assert_array_equal(labels, noise_labels)
    assert SCORES[name](good, labels) > SCORES[name](noise, labels)


@pytest.mark.parametrize("name", ["logme", "h_score", "leep"])
def test_invariant_to_sample_order(name):
    x, labels = _inputs(name, 3, good=False, seed=1)
    order = np.random.default_rng(5).permutation(labels.size)
    score = SCORES[name]
    assert score(x[order], labels[order]) == pytest.approx(score(x, labels), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_label_values_do_not_matter(name):
    x, labels = _inputs(name, 2, good=False, seed=2)
    remapped = np.where(labels == 0, 3, 7)
    score = SCORES[name]
    assert score(x, remapped) == pytest.approx(score(x, labels), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_common_input_errors(name):
    x, labels = _inputs(name, 2, good=True)
    score = SCORES[name]
    bad = x.copy()
    bad[0, 0], bad[3, 1] = np.nan, np.inf
    arg = "source_probs" if name in NEEDS_SOURCE_PROBS else "features"
    with pytest.raises(ConfigError, match=rf"{arg} contains 2 non-finite"):
        score(bad, labels)
    with pytest.raises(ConfigError, match="labels has 59 entries"):
        score(x, labels[:-1])
    with pytest.raises(ConfigError, match="at least 2 classes"):
        score(x, np.zeros_like(labels))
    with pytest.raises(ConfigError, match="2D"):
        score(x[:, 0], labels)
    with pytest.raises(ConfigError, match="integer"):
        score(x, labels + 0.5)


def test_leep_rejects_rows_that_are_not_probabilities():
    labels = np.array([0, 1, 0])
    with pytest.raises(ConfigError, match="1 row.*do not sum to 1"):
        leep(np.array([[0.9, 0.1], [0.5, 0.6], [0.3, 0.7]]), labels)
    with pytest.raises(ConfigError, match="negative"):
        leep(np.array([[1.2, -0.2], [0.5, 0.5], [0.3, 0.7]]), labels)
    # within the 1e-3 tolerance is accepted
    assert leep(np.array([[0.9, 0.1005], [0.5, 0.5], [0.3, 0.7]]), labels) <= 0.0


def test_grouped_probe_is_not_scored_on_cases_it_was_fitted_on():
    """Pixels of one case look alike: ungrouped folds reward memorising cases, grouped do not."""
    rng = np.random.default_rng(0)
    n_cases, per_case = 12, 20
    groups = np.repeat(np.arange(n_cases), per_case)
    case_label = rng.permutation(np.repeat([0, 1], n_cases // 2))  # unrelated to the features
    labels = case_label[groups]
    features = np.eye(n_cases)[groups] * 5 + rng.normal(scale=0.1, size=(len(groups), n_cases))
    assert linear_probe(features, labels) > 0.95  # memorised cases
    assert linear_probe(features, labels, groups=groups) < 0.7  # unseen cases: chance
