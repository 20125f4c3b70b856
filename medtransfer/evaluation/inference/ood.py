"""Out-of-distribution cases at inference: is this image like the ones the model was validated on?

A model's validated accuracy holds for cases like its training and validation cases. A case from
another scanner, protocol or population can silently get worse predictions. The check here works
in the model's own feature space:

- :func:`case_embedding` / :func:`embed_records` (from
  :mod:`~medtransfer.evaluation.inference.embedding`, re-exported here): one vector per case, the
  deepest level of the model's encoder, globally average-pooled (and averaged over slices for
  2D/2.5D models), after the preset's eval pipeline;
- :class:`OODDetector`: a distance to the reference (training) embeddings, either Mahalanobis
  (Lee et al., NeurIPS 2018, one class, Ledoit-Wolf covariance) or k-nearest-neighbour on
  L2-normalised embeddings (Sun et al., ICML 2022), with a threshold calibrated on held-out
  reference cases, so that about ``1 - quantile`` (5%) of new reference-like cases are flagged;
- :func:`warn_if_out_of_distribution`: an :class:`~medtransfer.errors.OutOfDistributionWarning`
  naming the case id, its score and the threshold.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medtransfer.errors import CheckpointError, ConfigError, OutOfDistributionWarning
from medtransfer.evaluation.inference.embedding import case_embedding, embed_records

__all__ = [
    "METHODS",
    "OODDetector",
    "OutOfDistributionWarning",
    "case_embedding",
    "embed_records",
    "warn_if_out_of_distribution",
]

METHODS = ("mahalanobis", "knn")
MIN_REFERENCE = 4
_STATE_FORMAT = "medtransfer.ood/1"


def _as_embeddings(embeddings: Any, name: str, dim: int | None = None) -> np.ndarray:
    """A finite float64 ``(n, d)`` matrix (one ``(d,)`` vector is one row), or a ConfigError."""
    arr = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else embeddings
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a numeric (n_cases, dim) array: {err}") from err
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ConfigError(
            f"{name} must be (n_cases, dim) embeddings (e.g. from embed_records), got shape "
            f"{arr.shape}."
        )
    if dim is not None and arr.shape[1] != dim:
        raise ConfigError(
            f"{name} have {arr.shape[1]} features but the detector was fit on {dim}; embed the "
            "cases with the same model (and encoder) as the reference cases."
        )
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ConfigError(f"{name} contain {bad} non-finite value(s) (NaN or inf).")
    return arr


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _fit_params(method: str, reference: np.ndarray, k: int) -> dict[str, Any]:
    """What the score needs: Ledoit-Wolf mean and precision, or the normalised reference and k."""
    if method == "knn":
        return {"reference": _unit_rows(reference), "k": k}
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(reference)
    return {"center": estimate.location_, "precision": estimate.precision_}


def _distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    sq = (queries**2).sum(1)[:, None] + (reference**2).sum(1)[None] - 2 * queries @ reference.T
    return np.sqrt(np.maximum(sq, 0.0))


def _mean_nearest(distances: np.ndarray, k: int) -> np.ndarray:
    return np.partition(distances, k - 1, axis=1)[:, :k].mean(1)


def _score(method: str, params: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    if method == "knn":
        return _mean_nearest(_distances(_unit_rows(x), params["reference"]), params["k"])
    diff = x - params["center"]
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, params["precision"], diff), 0.0))


def _held_out_scores(
    method: str, reference: np.ndarray, folds: int, seed: int, k: int
) -> np.ndarray:
    """Each reference case scored by a detector fit without it (cross-fitting).

    knn: leave-one-out, from one distance matrix (cheap, and fit on ``n - 1`` cases its
    neighbour distances match the final detector's; with 5 folds they come out longer, and the
    threshold too high). Mahalanobis: ``folds`` folds (one covariance fit per fold).
    """
    n = reference.shape[0]
    if method == "knn":
        unit = _unit_rows(reference)
        distances = _distances(unit, unit)
        np.fill_diagonal(distances, np.inf)
        return _mean_nearest(distances, k)
    order = np.random.default_rng(seed).permutation(n)
    held_out = np.empty(n)
    for part in np.array_split(order, min(folds, n)):
        rest = np.setdiff1d(order, part)
        held_out[part] = _score(method, _fit_params(method, reference[rest], k), reference[part])
    return held_out


def _check_fit_arguments(method: str, quantile: float, folds: int, k: int) -> None:
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not supported; allowed values: {METHODS}.")
    if isinstance(quantile, bool) or not isinstance(quantile, float | int) or not 0 < quantile < 1:
        raise ConfigError(f"quantile={quantile!r} must be in (0, 1); 0.95 flags ~5% of cases.")
    for name, value in (("folds", folds), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer.")
    if folds < 2:
        raise ConfigError(f"folds={folds!r} must be at least 2 (5 is usual).")


@dataclass(eq=False)
class OODDetector:
    """A distance in embedding space to the reference cases, with a calibrated threshold.

    Build it with :meth:`fit` (or :meth:`from_state`). ``score`` is higher for cases less like
    the reference: the Mahalanobis distance ``sqrt((z - mu)^T S^-1 (z - mu))`` with a Ledoit-Wolf
    covariance ``S``, or (``method="knn"``) the mean Euclidean distance of the L2-normalised
    embedding to its ``k`` nearest normalised reference embeddings (Sun et al. use the k-th
    distance; the mean is a smoother variant).

    Attributes:
        method: ``"mahalanobis"`` or ``"knn"``.
        threshold: scores above it are flagged.
        quantile: the quantile of held-out reference scores the threshold was set at.
        n_reference: reference cases it was fit on.
        dim: embedding size.
        calibration_scores: the held-out scores of the reference cases (the threshold is their
            ``quantile``), e.g. to plot next to a target site's scores.
        params: the fitted arrays (``center``/``precision``, or ``reference``/``k``).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> detector = OODDetector.fit(rng.normal(size=(100, 4)))
        >>> detector.n_reference, detector.dim, detector.method
        (100, 4, 'mahalanobis')
        >>> detector.flags(np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 8.0, 8.0]])).tolist()
        [False, True]
    """

    method: str
    threshold: float
    quantile: float
    n_reference: int
    dim: int
    calibration_scores: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    params: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def fit(
        cls,
        embeddings: Any,
        *,
        method: str = "mahalanobis",
        quantile: float = 0.95,
        folds: int = 5,
        seed: int = 0,
        k: int = 5,
    ) -> OODDetector:
        """Fit on reference embeddings; calibrate the threshold on held-out reference cases.

        In-sample scores are optimistic (every reference case is part of its own fit, so its
        score is smaller than a new case's), and a threshold at their 95th percentile flags
        far more than 5% of new reference-like cases (15-30% with 40-100 cases). Here each
        reference case is scored by a detector fit without it (``folds`` folds for Mahalanobis,
        leave-one-out for knn), the threshold is the ``quantile`` of these held-out scores, and
        the returned detector is then fit on all the cases.

        Args:
            embeddings: ``(n, d)`` embeddings of the reference (training) cases, ``n >= 4``.
            method: ``"mahalanobis"`` or ``"knn"``.
            quantile: fraction of reference-like cases to pass (0.95: ~5% flagged).
            folds: cross-fitting folds of the Mahalanobis method (capped at ``n``); knn always
                uses leave-one-out.
            seed: seed of the fold assignment.
            k: neighbours of the knn score (capped at ``n - 1``).

        Raises:
            ConfigError: fewer than 4 cases, bad arguments, or NaN/inf embeddings.
        """
        _check_fit_arguments(method, quantile, folds, k)
        reference = _as_embeddings(embeddings, "embeddings")
        n = reference.shape[0]
        if n < MIN_REFERENCE:
            raise ConfigError(
                f"The OOD detector needs at least {MIN_REFERENCE} reference cases, got {n}; "
                "embed more reference cases (e.g. the whole training set) with embed_records."
            )
        k = min(int(k), n - 1)
        held_out = _held_out_scores(method, reference, int(folds), seed, k)
        return cls(
            method=method,
            threshold=float(np.quantile(held_out, quantile)),
            quantile=float(quantile),
            n_reference=n,
            dim=int(reference.shape[1]),
            calibration_scores=held_out,
            params=_fit_params(method, reference, k),
        )

    def score(self, embeddings: Any) -> np.ndarray:
        """Scores of ``(n, d)`` embeddings (or one ``(d,)`` vector: ``n = 1``); higher = less alike."""
        return _score(self.method, self.params, _as_embeddings(embeddings, "embeddings", self.dim))

    def flags(self, embeddings: Any) -> np.ndarray:
        """``score > threshold`` for each case: True where a case is out of distribution."""
        return self.score(embeddings) > self.threshold

    def state_dict(self) -> dict[str, Any]:
        """Plain data (str/int/float and float64 tensors) for a checkpoint; ``weights_only`` loads it."""
        tensors = {
            name: torch.from_numpy(np.array(value, dtype=np.float64))
            for name, value in self.params.items()
            if name != "k"
        }
        state = {
            "format": _STATE_FORMAT,
            "method": self.method,
            "threshold": float(self.threshold),
            "quantile": float(self.quantile),
            "n_reference": int(self.n_reference),
            "dim": int(self.dim),
            "calibration_scores": torch.from_numpy(np.array(self.calibration_scores, np.float64)),
            **tensors,
        }
        if "k" in self.params:
            state["k"] = int(self.params["k"])
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OODDetector:
        """The detector of :meth:`state_dict`, checked; a malformed state is a CheckpointError."""

        def bad(what: str) -> CheckpointError:
            return CheckpointError(
                f"The OOD detector state is malformed: {what}. Re-fit it with "
                "OODDetector.fit(reference_embeddings) and store detector.state_dict()."
            )

        if not isinstance(state, Mapping):
            raise bad(f"expected a dict, got {type(state).__name__}")
        if state.get("format") != _STATE_FORMAT:
            raise bad(f"format {state.get('format')!r} is not {_STATE_FORMAT!r}")
        method = state.get("method")
        if method not in METHODS:
            raise bad(f"method {method!r} is not one of {METHODS}")
        tensor_keys = ("reference",) if method == "knn" else ("center", "precision")
        tensor_keys = ("calibration_scores", *tensor_keys)
        missing = [key for key in ("threshold", "quantile", "n_reference", "dim", *tensor_keys) if key not in state]  # fmt: skip
        if method == "knn" and "k" not in state:
            missing.append("k")
        if missing:
            raise bad(f"missing {', '.join(missing)}")
        try:
            threshold, quantile = float(state["threshold"]), float(state["quantile"])
            n, dim = int(state["n_reference"]), int(state["dim"])
            arrays = {key: torch.as_tensor(state[key]).double().numpy() for key in tensor_keys}
        except (TypeError, ValueError, RuntimeError) as err:
            raise bad(str(err)) from err
        if not np.isfinite(threshold) or not 0.0 < quantile < 1.0 or n < MIN_REFERENCE or dim < 1:
            raise bad(f"threshold={threshold}, quantile={quantile}, n_reference={n}, dim={dim}")
        shapes = {"center": (dim,), "precision": (dim, dim), "reference": (n, dim)}
        shapes["calibration_scores"] = (n,)
        for key, array in arrays.items():
            if array.shape != shapes[key] or not np.isfinite(array).all():
                raise bad(f"{key} has shape {array.shape}, expected {shapes[key]} (finite)")
        calibration = arrays.pop("calibration_scores")
        params: dict[str, Any] = dict(arrays)
        if method == "knn":
            k = state["k"]
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
                raise bad(f"k={k!r} must be an integer in [1, n_reference={n}]")
            params["k"] = k
        return cls(method, threshold, quantile, n, dim, calibration, params)


def warn_if_out_of_distribution(
    detector: OODDetector, embedding: Any, case_id: str
) -> tuple[float, bool]:
    """Score one case and warn (:class:`OutOfDistributionWarning`) when it is flagged.

    Args:
        detector: a fitted :class:`OODDetector`.
        embedding: the case's ``(d,)`` embedding (:func:`case_embedding`).
        case_id: the case's identifier, as in reports (a case id, never a patient name).

    Returns:
        ``(score, flagged)``.

    Example:
        >>> import warnings, numpy as np
        >>> detector = OODDetector.fit(np.random.default_rng(0).normal(size=(50, 3)))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     score, flagged = warn_if_out_of_distribution(detector, np.full(3, 9.0), "ct-07")
        >>> flagged, "ct-07" in str(caught[0].message)
        (True, True)
    """
    score = float(detector.score(embedding)[0])
    flagged = score > detector.threshold
    if flagged:
        warnings.warn(
            OutOfDistributionWarning(
                f"Case {case_id!r} is out of distribution: its {detector.method} score "
                f"{score:.3g} exceeds the threshold {detector.threshold:.3g} (the "
                f"{detector.quantile:.0%} quantile of held-out reference cases). The model's "
                "accuracy on this case is not what validation measured; check the acquisition "
                "(scanner, protocol, field of view, contrast), or adapt: "
                "mt.diagnostics.adapt_batchnorm."
            ),
            stacklevel=2,
        )
    return score, flagged
