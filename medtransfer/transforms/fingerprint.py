"""Dataset fingerprint and preprocessing plan, in the spirit of nnU-Net's planner.

:func:`fingerprint_dataset` measures a list of records (voxel spacings, sizes, the extent of the
body, intensity percentiles of the labelled foreground); :func:`plan_preprocessing` turns that into
spacing, window and roi sizes with small named rules (:func:`propose_spacing`,
:func:`propose_window`, :func:`propose_roi_size`). Both return plain JSON-serialisable dicts that a
person can read and edit; every preset accepts the plan (``presets.ct(..., plan=plan)``).
All geometry is given after reorientation to RAS, the axis order the presets use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, Orientationd

from medtransfer.data.case_ids import case_id
from medtransfer.errors import ConfigError
from medtransfer.transforms._checks import check_choice
from medtransfer.transforms.loading import LoadVolumed
from medtransfer.transforms.steps import RAS_LABELS

__all__ = [
    "fingerprint_dataset",
    "plan_preprocessing",
    "propose_roi_size",
    "propose_spacing",
    "propose_window",
]

_PERCENTILES = (0.5, 50.0, 99.5)
_MODALITIES = ("CT", "MR")


def fingerprint_dataset(
    records: Sequence[Mapping[str, Any]],
    *,
    image_key: str = "image",
    label_key: str = "label",
    body_threshold: float | None = None,
    samples_per_case: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure a dataset: per-case geometry plus pooled foreground intensity statistics.

    Args:
        records: dicts with an image (path or tensor) and optionally a label map (path or
            tensor; class values are ignored), e.g. from ``mt.data.load_manifest``.
        image_key: key of the image.
        label_key: key of the label map; its non-zero voxels are the intensity foreground.
        body_threshold: intensity above which a voxel is body (its bounding box is the
            "foreground extent", what a preset's foreground crop keeps; e.g. -500 HU for CT).
            ``None``: the whole image. Also the intensity foreground when a case has no label map.
        samples_per_case: foreground intensities sampled per case for the pooled percentiles.
        seed: seed of that sampling.

    Returns:
        ``{"n_cases", "modality", "cases": [{"case_id", "shape", "spacing", "extent_mm",
        "foreground_voxels"}], "spacing": {"median", "min", "max"}, "shape": {...},
        "extent_mm": {...}, "intensity": {"p0.5", "p50", "p99.5", "mean", "std", "min", "max"},
        "labels": [...]}``.

    Example:
        >>> import medtransfer as mt
        >>> cases = mt.data.synthetic.phantoms(2, shape=(32, 32, 8))
        >>> fp = mt.transforms.fingerprint_dataset(cases, body_threshold=-500)
        >>> fp["n_cases"], fp["spacing"]["median"], fp["labels"]
        (2, [10.0, 10.0, 20.0], [0, 1, 3, 4])
    """
    if not records:
        raise ConfigError("fingerprint_dataset needs at least one record; got none.")
    rng = np.random.default_rng(seed)
    cases, samples, labels, modalities = [], [], set(), set()
    for index, record in enumerate(records):
        if image_key not in record:
            raise ConfigError(f"Record {index} has no '{image_key}' key (image_key).")
        label = record.get(label_key)
        has_map = isinstance(label, str | torch.Tensor | np.ndarray) or hasattr(label, "__fspath__")
        keys = [image_key, label_key] if has_map else [image_key]
        loaded = Compose([LoadVolumed(keys), Orientationd(keys, axcodes="RAS", labels=RAS_LABELS)])(
            dict(record)
        )
        image = loaded[image_key]
        values = image.as_tensor().numpy()[0]
        affine = np.asarray(image.affine, dtype=np.float64)
        spacing = [round(float(s), 6) for s in np.linalg.norm(affine[:3, :3], axis=0)]
        if has_map:
            label_map = loaded[label_key].as_tensor().numpy()[0]
            labels.update(int(v) for v in np.unique(label_map))
            foreground = label_map > 0
        else:
            foreground = values > body_threshold if body_threshold is not None else None
        body = values > body_threshold if body_threshold is not None else np.ones_like(values, bool)
        chosen = values[foreground] if foreground is not None else values.ravel()
        if chosen.size > samples_per_case:
            chosen = rng.choice(chosen, samples_per_case, replace=False)
        samples.append(chosen.astype(np.float64))
        modalities.add(str(image.meta.get("modality", "")) or None)
        cases.append(
            {
                "case_id": case_id(record, index),
                "shape": [int(s) for s in values.shape],
                "spacing": spacing,
                "extent_mm": _extent_mm(body, spacing),
                "foreground_voxels": int(foreground.sum()) if foreground is not None else None,
            }
        )
    pooled = np.concatenate(samples) if samples else np.zeros(0)
    modalities.discard(None)
    return {
        "n_cases": len(cases),
        "modality": modalities.pop() if len(modalities) == 1 else None,
        "cases": cases,
        "spacing": _summary([c["spacing"] for c in cases]),
        "shape": _summary([c["shape"] for c in cases]),
        "extent_mm": _summary([c["extent_mm"] for c in cases]),
        "intensity": _intensity_summary(pooled),
        "labels": sorted(labels),
    }


def _extent_mm(mask: np.ndarray, spacing: Sequence[float]) -> list[float]:
    if not mask.any():
        return [0.0] * mask.ndim
    extent = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        extent.append(float((hits[-1] - hits[0] + 1) * spacing[axis]))
    return extent


def _summary(rows: list[list[float]]) -> dict[str, list[float]]:
    table = np.asarray(rows, dtype=np.float64)
    return {
        "median": [round(float(v), 4) for v in np.median(table, axis=0)],
        "min": [round(float(v), 4) for v in table.min(axis=0)],
        "max": [round(float(v), 4) for v in table.max(axis=0)],
    }


def _intensity_summary(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {k: None for k in ("p0.5", "p50", "p99.5", "mean", "std", "min", "max")}
    low, mid, high = np.percentile(values, _PERCENTILES)
    stats = {"p0.5": low, "p50": mid, "p99.5": high, "mean": values.mean(), "std": values.std()}
    stats.update(min=values.min(), max=values.max())
    return {k: round(float(v), 3) for k, v in stats.items()}


def propose_spacing(fingerprint: Mapping[str, Any], anisotropy_ratio: float = 3.0) -> list[float]:
    """Target spacing: the median spacing; for very anisotropic data, the coarse axis gets the
    10th percentile of its spacings instead (nnU-Net's rule: do not invent thin slices).

    Args:
        fingerprint: from :func:`fingerprint_dataset`.
        anisotropy_ratio: coarsest/finest median spacing above which the rule applies.

    Example:
        >>> fp = {"cases": [{"spacing": [0.8, 0.8, 5.0]}, {"spacing": [0.7, 0.7, 2.5]},
        ...                 {"spacing": [0.9, 0.9, 5.0]}]}
        >>> propose_spacing(fp)
        [0.8, 0.8, 3.0]
    """
    table = np.asarray([c["spacing"] for c in fingerprint["cases"]], dtype=np.float64)
    target = np.median(table, axis=0)
    coarse = int(np.argmax(target))
    if target[coarse] > anisotropy_ratio * target.min():
        target[coarse] = np.percentile(table[:, coarse], 10)
    return [round(float(v), 4) for v in target]


def propose_window(fingerprint: Mapping[str, Any]) -> dict[str, float]:
    """CT window covering the foreground's 0.5-99.5 percentile intensities (level/width in HU).

    Example:
        >>> propose_window({"intensity": {"p0.5": -100.0, "p99.5": 300.0}})
        {'level': 100.0, 'width': 400.0}
    """
    low, high = fingerprint["intensity"]["p0.5"], fingerprint["intensity"]["p99.5"]
    if low is None or high is None:
        raise ConfigError("The fingerprint has no foreground intensities; give window= yourself.")
    width = max(float(high) - float(low), 1.0)
    return {"level": round((float(low) + float(high)) / 2, 1), "width": round(width, 1)}


def propose_roi_size(
    fingerprint: Mapping[str, Any],
    spacing: Sequence[float],
    spatial_dims: int = 3,
    max_voxels: int | None = None,
    divisor: int | None = None,
) -> list[int]:
    """Crop size that holds the median body extent at ``spacing``, within a voxel budget.

    The median extent (mm) over the target spacing gives voxels; the largest axis is halved
    while the product exceeds ``max_voxels``; each side is rounded up to ``divisor``.

    Args:
        fingerprint: from :func:`fingerprint_dataset`.
        spacing: the target spacing (x, y, z) in mm.
        spatial_dims: 3 (x, y, z) or 2 (in-plane x, y).
        max_voxels: budget (default 128**3 in 3D, 512**2 in 2D).
        divisor: sides are multiples of it (default 16 in 3D, 32 in 2D: encoders' strides).

    Example:
        >>> fp = {"extent_mm": {"median": [300.0, 200.0, 100.0]}}
        >>> propose_roi_size(fp, [2.0, 2.0, 4.0]), propose_roi_size(fp, [2.0, 2.0, 4.0], 2)
        ([160, 112, 32], [160, 128])
    """
    max_voxels = max_voxels or (128**3 if spatial_dims == 3 else 512**2)
    divisor = divisor or (16 if spatial_dims == 3 else 32)
    extent = fingerprint["extent_mm"]["median"][:spatial_dims]
    size = [max(1, math.ceil(e / float(s))) for e, s in zip(extent, spacing)]
    while math.prod(size) > max_voxels and max(size) > divisor:
        largest = size.index(max(size))
        size[largest] = math.ceil(size[largest] / 2)
    return [max(divisor, math.ceil(v / divisor) * divisor) for v in size]


def plan_preprocessing(
    fingerprint: Mapping[str, Any],
    modality: str | None = None,
    spacing: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Turn a fingerprint into a plan: spacing, window (CT), roi sizes for 3D and 2D.

    Args:
        fingerprint: from :func:`fingerprint_dataset`.
        modality: ``"CT"`` or ``"MR"`` (default: the fingerprint's, else CT).
        spacing: force a target spacing instead of :func:`propose_spacing`.

    Returns:
        ``{"modality", "spacing", "window" (CT only), "roi_size", "roi_size_2d", "notes"}``,
        plain JSON; ``presets.ct(..., plan=plan)`` uses spacing, window and roi sizes.

    Example:
        >>> import medtransfer as mt
        >>> cases = mt.data.synthetic.phantoms(2, shape=(32, 32, 8))
        >>> plan = mt.transforms.plan_preprocessing(mt.transforms.fingerprint_dataset(cases))
        >>> plan["spacing"], plan["roi_size"]
        ([10.0, 10.0, 20.0], [32, 32, 16])
    """
    modality = modality or fingerprint.get("modality") or "CT"
    modality = check_choice("modality", str(modality).upper(), _MODALITIES)
    target = list(spacing) if spacing is not None else propose_spacing(fingerprint)
    plan: dict[str, Any] = {"modality": modality, "spacing": [float(s) for s in target]}
    notes = [
        f"spacing: median of {fingerprint['n_cases']} cases (10th percentile on a coarse axis)"
    ]
    if modality == "CT":
        plan["window"] = propose_window(fingerprint)
        notes.append("window: 0.5-99.5 percentiles of the labelled foreground intensities")
    plan["roi_size"] = propose_roi_size(fingerprint, target, 3)
    plan["roi_size_2d"] = propose_roi_size(fingerprint, target, 2)
    notes.append(
        "roi sizes: median body extent at the target spacing, multiples of 16 (3D)/32 (2D)"
    )
    plan["notes"] = notes
    return plan
