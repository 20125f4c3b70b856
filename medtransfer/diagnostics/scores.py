"""Transferability scores: how well frozen encoder features suit a target task, without fine-tuning.

Each score takes features (or source-class probabilities) of the target images and their labels,
and returns one float; for every score **higher is better**, so candidates sort the same way.

- ``logme``: log maximum evidence of a Bayesian linear model from features to one-hot labels,
  per sample (You et al., ICML 2021). Fast, no hyper-parameters; the default for ranking.
- ``h_score``: ``tr(cov(f)^+ cov(E[f|y]))``, the between-class over total feature variance
  (Bao et al., ICIP 2019); with ``shrinkage=True`` the Ledoit-Wolf regularised form of Ibrahim
  et al. (ICLR 2023), which stays stable when the feature dimension nears the sample count.
- ``leep``: log expected empirical prediction from the *source* classifier's probabilities
  (Nguyen et al., ICML 2020); needs a source head, hence listed in ``NEEDS_SOURCE_PROBS``.
- ``linear_probe``: cross-validated logistic regression on standardised features; slow but
  the trustworthy reference the cheaper scores try to predict.

Scores compare candidates on the same data; their absolute values mean little across datasets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medtransfer.errors import ConfigError

__all__ = ["NEEDS_SOURCE_PROBS", "SCORES", "h_score", "leep", "linear_probe", "logme"]

_PROBE_METRICS = ("balanced_accuracy", "accuracy", "auroc")


def feature_matrix(array: object, name: str) -> np.ndarray:
    """``array`` as a finite float64 (N, D) matrix, or a ConfigError naming ``name``."""
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise ConfigError(
            f"{name} must be a 2D array (n_samples, n_features), got shape {arr.shape}; "
            "flatten or pool the features first"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ConfigError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ConfigError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); "
            "remove or impute those samples before scoring"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ConfigError(f"{name} needs at least 2 samples and 1 feature, got shape {arr.shape}")
    return arr


def _as_labels(labels: object, n: int) -> tuple[np.ndarray, int]:
    """Labels remapped to 0..K-1 (any integers accepted) and K, validated against ``n`` samples."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ConfigError(f"labels must be a 1D array of class ids, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ConfigError(
            f"labels has {arr.shape[0]} entries but the features have {n} samples; "
            "pass one label per sample"
        )
    if np.issubdtype(arr.dtype, np.floating):
        # Integral floats (e.g. from pandas or torch) are accepted; anything else is a mistake.
        bad = int(np.count_nonzero(~np.isfinite(arr) | (arr != np.round(arr))))
        if bad:
            raise ConfigError(f"labels must be integer class ids; {bad} value(s) are not")
        arr = arr.astype(np.int64)
    elif not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ConfigError(f"labels must be integer class ids, got dtype {arr.dtype}")
    classes, codes = np.unique(arr, return_inverse=True)
    if classes.size < 2:
        raise ConfigError(f"labels hold {classes.size} class(es); scoring needs at least 2 classes")
    return codes.reshape(-1), int(classes.size)


def _logme_column(u: np.ndarray, sigma: np.ndarray, y: np.ndarray, d: int) -> float:
    """Maximum log evidence / N of ``y ~ N(F w, 1/beta)``, ``w ~ N(0, 1/alpha)`` (one column).

    ``u`` and ``sigma`` are the left singular vectors and squared singular values of F, so every
    quantity is a sum over the k = min(N, D) spectral components (the reference's SVD form).
    """
    n = y.shape[0]
    eps = 1e-5  # as in the reference: keeps alpha, beta finite for a perfect fit
    x2 = (u.T @ y) ** 2
    res_x2 = max(float(y @ y - x2.sum()), 0.0)  # part of y outside the column space of F

    def moments(t: float) -> tuple[float, float, float]:
        gamma = float((sigma / (sigma + t)).sum())  # effective number of parameters
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())  # |m|^2, m the posterior mean
        res2 = float((x2 / (1.0 + sigma / t) ** 2).sum()) + res_x2  # |y - F m|^2
        return gamma, m2, res2

    alpha, beta = 1.0, 1.0
    for _ in range(500):
        t = alpha / beta
        gamma, m2, res2 = moments(t)
        alpha = gamma / (m2 + eps)
        beta = (n - gamma) / (res2 + eps)
        # The reference stops at 1e-3; iterating to a tight tolerance reaches the fixed point.
        if abs(alpha / beta - t) / t <= 1e-10:
            break
    _, m2, res2 = moments(alpha / beta)
    # log|A|, A = alpha I_D + beta F^T F: the D - k zero eigenvalues of F^T F add log(alpha).
    log_det = float(np.log(alpha + beta * sigma).sum()) + (d - sigma.size) * np.log(alpha)
    evidence = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * log_det
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * np.log(2.0 * np.pi)
    )
    return float(evidence / n)


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: mean log maximum evidence of a linear model from features to one-hot labels.

    You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
    ICML 2021; follows the reference implementation (github.com/thuml/LogME, ``LogME.py``,
    ``_fit_fixed_point``): SVD of F, MacKay fixed-point updates of the prior precision alpha and
    noise precision beta per one-hot target column, evidence per column divided by N, averaged
    over columns. Two deliberate differences, both towards the paper's exact maximum evidence:
    the iteration runs to a relative tolerance of 1e-10 (the reference stops at 1e-3; values
    agree to about 1e-6), and when F has rank k < D (e.g. N < D) the D - k zero eigenvalues of
    F^T F are kept in log|alpha I + beta F^T F|, as in the reference's ICML-paper version
    (``_fit_icml``); its later SVD version drops them, which inflates scores when N < D. No
    centring and no bias, as in the reference. Typical values lie in about [-2, 2].

    Args:
        features: (N, D) features of the target samples.
        labels: (N,) integer class ids (any integers; remapped to 0..K-1).

    Returns:
        LogME, higher is better.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 20)
        >>> good = rng.normal(size=(40, 4)) + 3.0 * y[:, None]
        >>> noise = rng.normal(size=(40, 4))
        >>> logme(good, y) > logme(noise, y)
        True
    """
    f = feature_matrix(features, "features")
    codes, k = _as_labels(labels, f.shape[0])
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    if s[0] == 0.0:
        raise ConfigError("features are all zero; LogME needs features that vary")
    sigma = s**2
    sigma[s <= s[0] * max(n, d) * np.finfo(np.float64).eps] = 0.0  # numerical rank of F
    evidences = [_logme_column(u, sigma, (codes == c).astype(np.float64), d) for c in range(k)]
    return float(np.mean(evidences))


def h_score(features: np.ndarray, labels: np.ndarray, *, shrinkage: bool = True) -> float:
    """H-score: ``tr(cov(f)^+ cov(E[f|y]))``, class-mean variance relative to feature variance.

    Bao et al., "An Information-theoretic Approach to Transferability in Task Transfer
    Learning", ICIP 2019. With ``shrinkage=True`` (default) the regularised H-score of Ibrahim et
    al., "Newer is not always better: Rethinking transferability metrics, their peculiarities,
    stability and performance", ICLR 2023: ``tr(cov_a(f)^+ (1 - a) cov(E[f|y]))`` with
    ``cov_a`` the Ledoit-Wolf shrunk covariance and ``a`` its shrinkage. The raw score inverts a
    near-singular covariance when D approaches N, and then ranks noise; prefer the default.
    Features are centred first; ``cov(E[f|y])`` uses ``np.cov`` (ddof=1), as the references.

    Args:
        features: (N, D) features of the target samples.
        labels: (N,) integer class ids (any integers).
        shrinkage: use the Ledoit-Wolf regularised covariance.

    Returns:
        H-score, higher is better (at most K - 1 for K classes without shrinkage).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 20)
        >>> good = rng.normal(size=(40, 4)) + 3.0 * y[:, None]
        >>> h_score(good, y) > h_score(rng.normal(size=(40, 4)), y)
        True
    """
    f = feature_matrix(features, "features")
    codes, k = _as_labels(labels, f.shape[0])
    f = f - f.mean(axis=0, keepdims=True)
    g = np.zeros_like(f)
    for c in range(k):
        g[codes == c] = f[codes == c].mean(axis=0)
    cov_g = np.atleast_2d(np.cov(g, rowvar=False))
    if shrinkage:
        from sklearn.covariance import LedoitWolf  # lazy: sklearn is slow to import

        estimator = LedoitWolf(assume_centered=False).fit(f)
        cov_f, scale = estimator.covariance_, 1.0 - float(estimator.shrinkage_)
    else:
        cov_f, scale = np.atleast_2d(np.cov(f, rowvar=False)), 1.0
    inverse = np.linalg.pinv(cov_f, rcond=1e-15, hermitian=True)
    return float(np.trace(inverse @ (scale * cov_g)))


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: log expected empirical prediction of target labels from source-class probabilities.

    Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020. With ``theta(x)`` the source classifier's probabilities over
    Z source classes: ``P(y, z) = mean_i theta(x_i)_z [y_i = y]``, ``P(y|z) = P(y, z) / P(z)``,
    ``LEEP = mean_i log sum_z P(y_i|z) theta(x_i)_z``. Always <= 0; 0 when each source class
    maps to one target class. Rows are renormalised to sum to 1 exactly after validation.

    Args:
        source_probs: (N, Z) probabilities of the source classes (rows sum to 1 within 1e-3,
            e.g. a softmax of the ImageNet head).
        labels: (N,) integer target class ids (any integers).

    Returns:
        LEEP, higher (closer to 0) is better.

    Example:
        >>> import numpy as np
        >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
        >>> round(leep(probs, np.array([0, 1, 0])), 4)
        -0.3652
    """
    theta = feature_matrix(source_probs, "source_probs")
    codes, k = _as_labels(labels, theta.shape[0])
    negative = int(np.count_nonzero(theta < 0))
    if negative:
        raise ConfigError(
            f"source_probs has {negative} negative value(s); pass probabilities "
            "(e.g. softmax of the logits), not logits"
        )
    sums = theta.sum(axis=1)
    off = int(np.count_nonzero(np.abs(sums - 1.0) > 1e-3))
    if off:
        raise ConfigError(
            f"source_probs has {off} row(s) that do not sum to 1 (within 1e-3); pass "
            "probabilities (e.g. softmax of the logits) over all source classes"
        )
    theta = theta / sums[:, None]
    n = theta.shape[0]
    onehot = np.eye(k)[codes]  # (N, K)
    joint = onehot.T @ theta / n  # (K, Z): P(y, z)
    marginal = joint.sum(axis=0)  # P(z)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = np.einsum("iz,iz->i", theta, conditional[codes])  # sum_z P(y_i|z) theta_z
    return float(np.mean(np.log(expected)))


def linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    metric: str = "balanced_accuracy",
    groups: np.ndarray | None = None,
) -> float:
    """Cross-validated logistic-regression probe on frozen features: the slow, trusted reference.

    Stratified k-fold (shuffled with ``seed``) of ``StandardScaler`` + L2
    ``LogisticRegression(max_iter=1000)``; returns the mean over folds of the out-of-fold metric.
    ``folds`` is reduced to the smallest class count when a class is rarer. The fold assignment
    depends on the sample order, so reordering samples can change the value slightly.

    Args:
        features: (N, D) features of the target samples.
        labels: (N,) integer class ids (any integers); every class needs at least 2 samples.
        folds: number of folds (at least 2).
        seed: seed of the fold shuffle; the result is deterministic given it.
        metric: "balanced_accuracy", "accuracy" or "auroc" (binary ROC AUC; macro one-vs-rest
            for more classes).
        groups: (N,) the case each sample comes from (pixels of a segmentation): folds then
            never split a case (``StratifiedGroupKFold``), so the probe is not scored on pixels of
            cases it was fitted on. Folds are reduced to the number of cases.

    Returns:
        Mean out-of-fold metric, higher is better.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 20)
        >>> linear_probe(rng.normal(size=(40, 3)) + 5.0 * y[:, None], y)
        1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if metric not in _PROBE_METRICS:
        raise ConfigError(f"metric must be one of {_PROBE_METRICS}, got {metric!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}")
    f = feature_matrix(features, "features")
    codes, k = _as_labels(labels, f.shape[0])
    smallest = int(np.bincount(codes).min())
    if smallest < 2:
        raise ConfigError(
            f"labels: a class has only {smallest} sample; the linear probe needs at least 2 "
            "samples per class (drop or merge rare classes)"
        )
    n_splits = min(int(folds), smallest)
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if groups.shape[0] != f.shape[0]:
            raise ConfigError(f"groups has {groups.shape[0]} entries, features {f.shape[0]} rows")
        n_splits = min(int(folds), len(np.unique(groups)))
        if n_splits < 2:
            raise ConfigError("groups: the linear probe needs samples of at least 2 cases")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    values = []
    for train, test in splitter.split(f, codes, groups):
        if len(np.unique(codes[train])) < 2 or len(np.unique(codes[test])) < 2:
            continue  # a grouped fold holding one class: no probe or no metric on it
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(f[train], codes[train])
        if metric == "auroc":
            proba = model.predict_proba(f[test])
            if k == 2:
                values.append(roc_auc_score(codes[test], proba[:, 1]))
            else:
                values.append(
                    roc_auc_score(
                        codes[test], proba, multi_class="ovr", average="macro", labels=range(k)
                    )
                )
        else:
            score = balanced_accuracy_score if metric == "balanced_accuracy" else accuracy_score
            values.append(score(codes[test], model.predict(f[test])))
    if not values:
        raise ConfigError("labels: no fold holds two classes on both sides; give more cases")
    return float(np.mean(values))


SCORES: dict[str, Callable[..., float]] = {
    "logme": logme,
    "h_score": h_score,
    "leep": leep,
    "linear_probe": linear_probe,
}
"""Score functions by name; every score is higher-is-better."""

NEEDS_SOURCE_PROBS: frozenset[str] = frozenset({"leep"})
"""Scores that take source-classifier probabilities instead of features."""
