"""Surface-distance metrics in millimetres: HD95, average symmetric surface distance, surface Dice.

The surfaces and distances come from MONAI (``monai.metrics.utils.get_edge_surface_distance``:
edge voxels by binary erosion, exact Euclidean distances between edge voxel centres scaled by
the spacing of each case), computed once per case and class and shared by the three metrics.
The reductions follow MONAI's definitions, so values agree with ``HausdorffDistanceMetric(
percentile=95)``, ``SurfaceDistanceMetric(symmetric=True)`` and ``SurfaceDiceMetric``:

- HD95: the larger of the two directed 95th percentiles (prediction->reference,
  reference->prediction) of edge-to-edge distances (linear interpolation of the percentile).
- ASSD: the mean of both directed distance sets pooled together.
- Surface Dice (NSD) at tolerance ``tau`` mm: edge voxels of both surfaces lying within ``tau``
  of the other surface, divided by all edge voxels of both surfaces.

Empty masks follow the table in :mod:`medtransfer.evaluation.metrics.overlap`: NaN when the class is
absent from both, ``empty_distance`` (default: the image diagonal in mm) for HD95/ASSD and 0 for
surface Dice when it is absent from one of them. MONAI would return inf/NaN and warn instead.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medtransfer.errors import ConfigError
from medtransfer.evaluation.metrics.mask_inputs import (
    SegmentationPair,
    image_diagonal_mm,
    prepare_segmentation,
)

__all__ = [
    "SURFACE_METRICS",
    "average_surface_distance",
    "hausdorff95",
    "surface_dice",
    "surface_metrics",
    "surface_metrics_from_pair",
]

SURFACE_METRICS = ("hd95", "assd", "nsd")


def _check_empty_distance(empty_distance: float | str) -> None:
    if isinstance(empty_distance, str):
        if empty_distance != "diagonal":
            raise ConfigError(
                f"empty_distance must be 'diagonal' or a number (math.inf allowed), got {empty_distance!r}."
            )
    elif not isinstance(empty_distance, (int, float)) or empty_distance < 0:
        raise ConfigError(f"empty_distance must be a non-negative number, got {empty_distance!r}.")


def _tolerances(tolerance_mm: float | Sequence[float] | None, n_classes: int) -> np.ndarray | None:
    if tolerance_mm is None:
        return None
    tol = np.asarray(tolerance_mm, dtype=np.float64).reshape(-1)
    if tol.size == 1:
        tol = np.full(n_classes, float(tol[0]))
    if tol.size != n_classes or not np.all(np.isfinite(tol)) or np.any(tol < 0):
        raise ConfigError(
            f"tolerance_mm must be one non-negative number or one per class ({n_classes}), "
            f"got {tolerance_mm!r}."
        )
    return tol


def _directed_distances(
    pred: torch.Tensor, target: torch.Tensor, spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    from monai.metrics.utils import get_edge_surface_distance

    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated argument internally; not the user's concern
        warnings.filterwarnings(
            "ignore", message=".*always_return_as_numpy", category=FutureWarning
        )
        _, distances, _ = get_edge_surface_distance(
            pred, target, spacing=tuple(float(s) for s in spacing), symmetric=True, warn_empty=False
        )
    d_pred, d_target = (np.asarray(torch.as_tensor(d).double().numpy()) for d in distances)
    return d_pred, d_target


def surface_metrics_from_pair(
    pair: SegmentationPair,
    metrics: Sequence[str] = SURFACE_METRICS,
    tolerance_mm: float | Sequence[float] | None = None,
    empty_distance: float | str = "diagonal",
) -> dict[str, np.ndarray]:
    """Surface metrics of a prepared pair: ``{name: (B, C) float64}`` for each name in ``metrics``."""
    unknown = set(metrics) - set(SURFACE_METRICS)
    if unknown:
        raise ConfigError(
            f"unknown surface metrics {sorted(unknown)}; choose from {SURFACE_METRICS}."
        )
    _check_empty_distance(empty_distance)
    batch, n_classes = pair.pred.shape[:2]
    tol = _tolerances(tolerance_mm, n_classes)
    if "nsd" in metrics and tol is None:
        raise ConfigError("surface Dice ('nsd') needs tolerance_mm (in mm), e.g. tolerance_mm=2.0.")
    out = {name: np.full((batch, n_classes), np.nan) for name in metrics}
    p_present, t_present = pair.pred_present, pair.target_present
    spatial_shape = tuple(pair.pred.shape[2:])
    for b, c in np.ndindex(batch, n_classes):
        if not p_present[b, c] and not t_present[b, c]:
            continue  # absent from both: NaN for every metric
        if p_present[b, c] != t_present[b, c]:
            worst = (
                image_diagonal_mm(spatial_shape, pair.spacing[b])
                if empty_distance == "diagonal"
                else float(empty_distance)
            )
            for name in metrics:
                out[name][b, c] = 0.0 if name == "nsd" else worst
            continue
        d_pred, d_target = _directed_distances(pair.pred[b, c], pair.target[b, c], pair.spacing[b])
        if "hd95" in out:
            out["hd95"][b, c] = max(np.quantile(d_pred, 0.95), np.quantile(d_target, 0.95))
        if "assd" in out:
            out["assd"][b, c] = np.concatenate([d_pred, d_target]).mean()
        if "nsd" in out and tol is not None:
            within = np.sum(d_pred <= tol[c]) + np.sum(d_target <= tol[c])
            out["nsd"][b, c] = within / (d_pred.size + d_target.size)
    return out


def surface_metrics(
    pred: Any,
    target: Any,
    spacing: Any = None,
    *,
    tolerance_mm: float | Sequence[float] | None = None,
    num_classes: int | None = None,
    include_background: bool = False,
    empty_distance: float | str = "diagonal",
) -> dict[str, np.ndarray]:
    """HD95, ASSD and (with ``tolerance_mm``) surface Dice in one pass over the surfaces.

    Args:
        pred: prediction label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        target: reference, same layouts.
        spacing: voxel size in mm: None (``meta["spacing"]`` of a MetaTensor, else 1 voxel),
            a number, one value per spatial axis, or one row per case ``(B, spatial_dims)``.
        tolerance_mm: surface Dice tolerance in mm, one number or one per class column;
            without it ``"nsd"`` is left out.
        num_classes: classes including background; inferred when None.
        include_background: keep class 0 as the first column.
        empty_distance: HD95/ASSD when exactly one mask is empty: ``"diagonal"`` (the largest
            distance between two voxel centres of the image, in mm) or a number (``math.inf``).

    Returns:
        ``{"hd95": (B, C), "assd": (B, C)[, "nsd": (B, C)]}``, float64 arrays.

    Example:
        >>> import numpy as np
        >>> ref = np.zeros((1, 1, 8, 8), dtype=np.int64); ref[0, 0, 2:5, 2:5] = 1
        >>> pred = np.roll(ref, 1, axis=2)  # shifted by one voxel along the first axis
        >>> out = surface_metrics(pred, ref, spacing=(2.0, 1.0), tolerance_mm=1.0)
        >>> {k: v.round(3).tolist() for k, v in out.items()}
        {'hd95': [[2.0]], 'assd': [[0.875]], 'nsd': [[0.625]]}
    """
    pair = prepare_segmentation(pred, target, spacing, num_classes, include_background)
    names = SURFACE_METRICS if tolerance_mm is not None else SURFACE_METRICS[:2]
    return surface_metrics_from_pair(pair, names, tolerance_mm, empty_distance)


def hausdorff95(
    pred: Any,
    target: Any,
    spacing: Any = None,
    *,
    num_classes: int | None = None,
    include_background: bool = False,
    empty_distance: float | str = "diagonal",
) -> np.ndarray:
    """95th-percentile symmetric Hausdorff distance in mm per case and class (as MONAI's).

    Args:
        pred: prediction label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        target: reference, same layouts.
        spacing: voxel size in mm, see :func:`surface_metrics`.
        num_classes: classes including background; inferred when None.
        include_background: keep class 0 as the first column.
        empty_distance: value when exactly one mask is empty: ``"diagonal"`` or a number.

    Returns:
        float64 array ``(B, classes)``; NaN where the class is absent from both masks.

    Example:
        >>> import math, numpy as np
        >>> ref = np.zeros((2, 1, 16, 16), dtype=np.int64); ref[:, 0, 4:10, 4:10] = 1
        >>> pred = np.roll(ref, 3, axis=3); pred[1] = 0  # case 1: empty prediction
        >>> hausdorff95(pred, ref, spacing=2.0, empty_distance=math.inf).tolist()
        [[6.0], [inf]]
    """
    pair = prepare_segmentation(pred, target, spacing, num_classes, include_background)
    return surface_metrics_from_pair(pair, ("hd95",), None, empty_distance)["hd95"]


def average_surface_distance(
    pred: Any,
    target: Any,
    spacing: Any = None,
    *,
    num_classes: int | None = None,
    include_background: bool = False,
    empty_distance: float | str = "diagonal",
) -> np.ndarray:
    """Average symmetric surface distance (ASSD) in mm per case and class.

    Args:
        pred: prediction label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        target: reference, same layouts.
        spacing: voxel size in mm, see :func:`surface_metrics`.
        num_classes: classes including background; inferred when None.
        include_background: keep class 0 as the first column.
        empty_distance: value when exactly one mask is empty: ``"diagonal"`` or a number.

    Returns:
        float64 array ``(B, classes)``; NaN where the class is absent from both masks.

    Example:
        >>> import numpy as np
        >>> ref = np.zeros((1, 1, 8, 8), dtype=np.int64); ref[0, 0, 2:5, 2:5] = 1
        >>> average_surface_distance(ref, ref).tolist()
        [[0.0]]
    """
    pair = prepare_segmentation(pred, target, spacing, num_classes, include_background)
    return surface_metrics_from_pair(pair, ("assd",), None, empty_distance)["assd"]


def surface_dice(
    pred: Any,
    target: Any,
    spacing: Any = None,
    *,
    tolerance_mm: float | Sequence[float],
    num_classes: int | None = None,
    include_background: bool = False,
) -> np.ndarray:
    """Normalised surface Dice at ``tolerance_mm`` per case and class (as MONAI's, no subvoxels).

    Args:
        pred: prediction label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        target: reference, same layouts.
        spacing: voxel size in mm, see :func:`surface_metrics`.
        tolerance_mm: accepted boundary deviation in mm, one number or one per class column.
        num_classes: classes including background; inferred when None.
        include_background: keep class 0 as the first column.

    Returns:
        float64 array ``(B, classes)`` in [0, 1]; NaN where the class is absent from both masks,
        0 where it is absent from exactly one.

    Example:
        >>> import numpy as np
        >>> ref = np.zeros((1, 1, 16, 16), dtype=np.int64); ref[0, 0, 4:10, 4:10] = 1
        >>> pred = np.roll(ref, 3, axis=3)
        >>> surface_dice(pred, ref, spacing=2.0, tolerance_mm=6.0).tolist()
        [[1.0]]
    """
    if tolerance_mm is None or (isinstance(tolerance_mm, float) and math.isnan(tolerance_mm)):
        raise ConfigError("surface_dice needs tolerance_mm (in mm), e.g. tolerance_mm=2.0.")
    pair = prepare_segmentation(pred, target, spacing, num_classes, include_background)
    return surface_metrics_from_pair(pair, ("nsd",), tolerance_mm)["nsd"]
