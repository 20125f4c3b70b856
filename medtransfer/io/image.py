"""Build the MetaTensor that every loader returns, with medtransfer's metadata conventions.

Conventions (DESIGN.md): a channel-less spatial array indexed (i, j, k) like nibabel; ``affine``
maps voxel indices to RAS+ world millimetres; ``meta["spacing"]`` holds the voxel size in mm.
A colour or multi-volume image keeps its channels last and says so in
``meta["original_channel_dim"] = -1`` (MONAI's convention); otherwise it is ``"no_channel"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["affine_spacing", "make_image"]


def affine_spacing(affine: np.ndarray, spatial_dims: int = 3) -> tuple[float, ...]:
    """Voxel size in mm: the length of each of the first ``spatial_dims`` affine columns.

    Example:
        >>> affine_spacing(np.diag([-0.7, -0.7, 2.5, 1.0]))
        (0.7, 0.7, 2.5)
    """
    affine = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.linalg.norm(affine[:3, :spatial_dims], axis=0))


def make_image(
    array: np.ndarray,
    affine: np.ndarray,
    *,
    source: str,
    channel_last: bool = False,
    extra: Mapping[str, Any] | None = None,
):
    """Wrap ``array`` (numpy) and a 4x4 RAS+ ``affine`` into a ``monai.data.MetaTensor``.

    Args:
        array: spatial array (i, j[, k]) or, with ``channel_last``, (i, j[, k], c).
        affine: 4x4 voxel-to-RAS+ matrix in mm.
        source: file or folder the image came from (``meta["filename_or_obj"]``).
        channel_last: the last axis holds channels (colour, or several volumes).
        extra: more metadata (modality, series uid, ...). Never put PHI here.

    Example:
        >>> img = make_image(np.zeros((4, 5, 6), np.float32), np.eye(4), source="mem")
        >>> tuple(img.shape), img.meta["spacing"]
        ((4, 5, 6), (1.0, 1.0, 1.0))
    """
    import torch
    from monai.data import MetaTensor
    from monai.utils import SpaceKeys

    affine = np.asarray(affine, dtype=np.float64)
    spatial_shape = array.shape[:-1] if channel_last else array.shape
    spatial_dims = min(len(spatial_shape), 3)
    meta: dict[str, Any] = {
        "filename_or_obj": str(source),
        "spacing": affine_spacing(affine, spatial_dims),
        "spatial_shape": np.asarray(spatial_shape, dtype=np.int64),
        "original_affine": affine.copy(),
        "original_channel_dim": -1 if channel_last else "no_channel",
        "space": SpaceKeys.RAS,
    }
    if extra:
        meta.update(extra)
    return MetaTensor(torch.from_numpy(array), affine=torch.from_numpy(affine.copy()), meta=meta)
