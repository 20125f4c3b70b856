"""``domain_shift``: how far a new site's images are from the ones a model was trained on.

Three views of the same two groups of cases, each with a reference scale:

- **acquisition**: header fingerprints side by side (:mod:`.acquisition`), differences named;
- **intensity**: Wasserstein-1 distance between the foreground intensities the model sees (after
  the preset's window or scaling, before the encoder's mean/std), beside the distance between
  two halves of the reference site;
- **features**: MMD² with a permutation p-value and the Fréchet distance between encoder
  embeddings (one pooled vector per case), a PCA scatter, and a per-case out-of-distribution
  score whose threshold is calibrated on held-out reference cases (:class:`OODDetector`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from medtransfer.data.case_ids import case_ids
from medtransfer.diagnostics.acquisition import acquisition_fingerprint, compare_acquisition
from medtransfer.diagnostics.candidates import Candidate, as_candidate
from medtransfer.diagnostics.rank import candidate_encoder, candidate_eval_transform
from medtransfer.diagnostics.shift_report import ShiftReport
from medtransfer.diagnostics.shift_stats import (
    frechet_distance,
    intensity_percentiles,
    mmd_test,
    wasserstein_1,
)
from medtransfer.errors import ConfigError
from medtransfer.evaluation.inference.geometry import prepare_pipeline
from medtransfer.evaluation.inference.ood import OODDetector, case_embedding
from medtransfer.transforms import EncoderNormalized, run_pipeline

__all__ = ["domain_shift"]

_SAMPLES_PER_CASE = 5000  # foreground intensities kept per case for the distances and histograms


def _split_sites(
    reference: Sequence[Mapping[str, Any]],
    target: Sequence[Mapping[str, Any]] | None,
    site_key: str,
    reference_site: str | None,
) -> tuple[list, list, str, str]:
    """The two groups and their names: given, or split by the records' ``site`` column."""
    reference = list(reference)

    def name(records: list, default: str) -> str:
        sites = {str(r.get(site_key)) for r in records if r.get(site_key) not in (None, "")}
        return sites.pop() if len(sites) == 1 else default

    if target is not None:
        return reference, list(target), name(reference, "reference"), name(list(target), "target")
    sites = list(dict.fromkeys(str(r.get(site_key)) for r in reference if r.get(site_key)))
    if len(sites) < 2:
        raise ConfigError(
            f"domain_shift got one group of records and their '{site_key}' column holds "
            f"{sites or 'nothing'}: pass target=[...] records, or records of two sites."
        )
    chosen = str(reference_site) if reference_site is not None else sites[0]
    if chosen not in sites:
        raise ConfigError(f"reference_site={reference_site!r} is not among the sites {sites}.")
    ref = [r for r in reference if str(r.get(site_key)) == chosen]
    tgt = [r for r in reference if str(r.get(site_key)) != chosen]
    others = sorted({str(r.get(site_key)) for r in tgt})
    return ref, tgt, chosen, "+".join(others)


def _normaliser_split(pipeline: Any) -> tuple[Any, Any]:
    """The eval pipeline before the encoder normalisation, and that normalisation."""
    from monai.transforms import Compose

    steps = list(pipeline.transforms)
    cut = len(steps)
    while cut > 0 and isinstance(steps[cut - 1], EncoderNormalized):
        cut -= 1
    return Compose(steps[:cut]), Compose(steps[cut:])


def _foreground_sample(x: torch.Tensor, stacked: bool, rng: np.random.Generator) -> np.ndarray:
    """Intensities of the central channel above the image's mean: the body (the "mean" rule of
    histogram standardisation), without the air, padding and background noise that would
    otherwise dominate the distribution of an MR image."""
    values = x[:, x.shape[1] // 2] if stacked else x[0]
    values = values.detach().float().cpu().numpy().ravel()
    foreground = values[values > values.mean()]
    if foreground.size > _SAMPLES_PER_CASE:
        foreground = rng.choice(foreground, _SAMPLES_PER_CASE, replace=False)
    return foreground.astype(np.float64)


def _measure(
    records: list, encoder: Any, pipeline: Any, key: str, batch_size: int, device: Any,
    rng: np.random.Generator, progress: bool, label: str,
) -> tuple[np.ndarray, list[np.ndarray], list[dict]]:  # fmt: skip
    """Embeddings, foreground intensities and acquisition fingerprints of each case."""
    from tqdm.auto import tqdm

    loader, rest = pipeline
    before, normalise = _normaliser_split(rest)
    embeddings, intensities, fingerprints = [], [], []
    for index, record in enumerate(tqdm(records, desc=label, unit="case", disable=not progress)):
        if key not in record:
            raise ConfigError(f"Record {index} ({label}) has no '{key}' key (image_key).")
        image = record[key]
        fingerprints.append(acquisition_fingerprint(image, record))
        loaded = loader({key: image})
        x = run_pipeline(before, loaded)[key]
        stacked = "slice_stack" in getattr(x, "meta", {})
        intensities.append(_foreground_sample(x, stacked, rng))
        x = run_pipeline(normalise, {key: x})[key]
        if encoder.spatial_dims == 2 and not stacked and x.ndim == 3:
            x = x[None]  # one 2D image: a stack of one slice
        embeddings.append(case_embedding(encoder, x, batch_size=batch_size, device=device))
    return np.stack(embeddings), intensities, fingerprints


def _histograms(reference: np.ndarray, target: np.ndarray, bins: int = 60) -> dict[str, Any]:
    low = float(min(reference.min(), target.min()))
    high = float(max(reference.max(), target.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    ref, _ = np.histogram(reference, edges, density=True)
    tgt, _ = np.histogram(target, edges, density=True)
    return {"edges": edges.tolist(), "reference": ref.tolist(), "target": tgt.tolist()}


def _pca(reference: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    pooled = np.concatenate([reference, target])
    mean, scale = pooled.mean(0), pooled.std(0) + 1e-8
    z = (pooled - mean) / scale
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    coords = z @ vt[:2].T
    explained = (s[:2] ** 2 / max((s**2).sum(), 1e-12)).tolist()
    return coords[: len(reference)], coords[len(reference) :], explained


def _halves(values: list[np.ndarray], rng: np.random.Generator) -> float | None:
    """W1 between the intensities of two random halves of the cases (what 'no shift' gives)."""
    if len(values) < 4:
        return None
    order = rng.permutation(len(values))
    half = len(values) // 2
    a = np.concatenate([values[i] for i in order[:half]])
    b = np.concatenate([values[i] for i in order[half:]])
    return wasserstein_1(a, b)


def domain_shift(
    reference: Sequence[Mapping[str, Any]],
    target: Sequence[Mapping[str, Any]] | None,
    preset: Any,
    *,
    model: torch.nn.Module | None = None,
    encoder: str | Candidate | None = None,
    site_key: str = "site",
    reference_site: str | None = None,
    method: str = "mahalanobis",
    quantile: float = 0.95,
    alpha: float = 0.01,
    permutations: int = 1000,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
    image_key: str | None = None,
    progress: bool = False,
) -> ShiftReport:
    """Measure the shift from ``reference`` cases (a training site) to ``target`` cases.

    Needs no labels. Each case goes through the preset's eval pipeline once: its foreground
    intensities (after the window/scaling, before the encoder's normalisation) and one embedding
    (the encoder's deepest level, pooled over space and slices) are kept.

    Args:
        reference: records of the reference site (e.g. the training split), with ``image``.
        target: records of the new site; ``None`` when ``reference`` holds both sites in a
            ``site_key`` column (the reference is ``reference_site``, default the first seen).
        preset: the ``(train, eval)`` pair the model uses, or a preset callable (called with
            the encoder's input spec, as in ``rank_encoders``).
        model: a trained ``mt.models`` model: its encoder gives the embeddings (the features
            the model's own decisions use). Default: ``encoder``.
        encoder: a candidate (``"tf_efficientnet_lite0"``, ``"resnet18:2.5d"``...) used when no
            model is given; default ImageNet EfficientNet-Lite0 in 2D.
        site_key: the records' column naming the site (used for names and for splitting).
        reference_site: with ``target=None``, the site that is the reference.
        method: per-case out-of-distribution score, ``"mahalanobis"`` or ``"knn"``.
        quantile: the threshold is this quantile of held-out reference scores (5-fold).
        alpha: the feature test flags a shift when its p-value is below ``alpha``.
        permutations: permutations of the MMD test (its p-value is at least 1/(1+permutations)).
        batch_size, device: for the encoder's forward passes.
        seed: seeds the permutations, the intensity sampling and the calibration folds.
        image_key: the records' image key (default: the pipeline's first key).
        progress: progress bars over the cases.

    Returns:
        A :class:`ShiftReport` (``print`` it; ``.plot()``, ``.to_frame()``, ``.add_to(report)``).

    Raises:
        ConfigError: fewer than 4 reference or 2 target cases, or bad arguments.

    Example:
        >>> import torch, medtransfer as mt
        >>> site_a = mt.data.synthetic.phantoms(6, shape=(24, 24, 4), seed=0)
        >>> site_b = [{**r, "image": r["image"] * 0.5} for r in mt.data.synthetic.phantoms(3, shape=(24, 24, 4), seed=1)]
        >>> preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
        >>> report = mt.diagnostics.domain_shift(site_a, site_b, preset, encoder="resnet18:random", permutations=99)
        >>> report.n_reference, report.n_target, len(report.target_scores)
        (6, 3, 3)
    """
    ref, tgt, ref_name, tgt_name = _split_sites(reference, target, site_key, reference_site)
    if len(ref) < 4 or len(tgt) < 2:
        raise ConfigError(
            f"domain_shift needs at least 4 reference and 2 target cases; got {len(ref)} and "
            f"{len(tgt)}. The OOD threshold is calibrated on held-out reference cases."
        )
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha={alpha!r} must lie in (0, 1), e.g. 0.01.")
    start = time.perf_counter()
    if model is not None:
        if encoder is not None:
            raise ConfigError("Pass model= or encoder=, not both: the embeddings come from one.")
        name, net = candidate_encoder(model)
        eval_transform = candidate_eval_transform(model, preset, net)
    else:
        candidate = as_candidate(encoder or "tf_efficientnet_lite0")
        name, net = candidate_encoder(candidate)
        eval_transform = candidate_eval_transform(candidate, preset, net)
    loader, rest, key = prepare_pipeline(eval_transform, image_key)
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    measured = [
        _measure(records, net, (loader, rest), key, batch_size, device, rng, progress, label)
        for records, label in ((ref, ref_name), (tgt, tgt_name))
    ]
    (ref_emb, ref_int, ref_fp), (tgt_emb, tgt_int, tgt_fp) = measured
    mmd2, p_value = mmd_test(ref_emb, tgt_emb, permutations=permutations, seed=seed)
    detector = OODDetector.fit(ref_emb, method=method, quantile=quantile, seed=seed)
    target_scores = detector.score(tgt_emb)
    ref_pooled, tgt_pooled = np.concatenate(ref_int), np.concatenate(tgt_int)
    ref_xy, tgt_xy, explained = _pca(ref_emb, tgt_emb)
    return ShiftReport(
        reference_name=ref_name,
        target_name=tgt_name,
        reference_ids=case_ids(ref),
        target_ids=case_ids(tgt),
        acquisition=compare_acquisition(ref_fp, tgt_fp),
        intensity={
            "w1": wasserstein_1(ref_pooled, tgt_pooled),
            "w1_within_reference": _halves(ref_int, rng),
            "reference": intensity_percentiles(ref_pooled),
            "target": intensity_percentiles(tgt_pooled),
            "histogram": _histograms(ref_pooled, tgt_pooled),
        },
        features={
            "encoder": name,
            "dim": int(ref_emb.shape[1]),
            "mmd2": mmd2,
            "p_value": p_value,
            "permutations": permutations,
            "frechet": frechet_distance(ref_emb, tgt_emb),
            "pca_reference": ref_xy.tolist(),
            "pca_target": tgt_xy.tolist(),
            "pca_explained": explained,
        },
        ood={
            "method": detector.method,
            "quantile": quantile,
            "threshold": float(detector.threshold),
            "reference_scores": [float(s) for s in detector.calibration_scores],
            "target_scores": [float(s) for s in target_scores],
        },
        alpha=alpha,
        seconds=time.perf_counter() - start,
    )
