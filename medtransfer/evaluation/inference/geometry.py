"""The eval pipeline for inference, and the way back to the source image's grid.

:func:`prepare_pipeline` splits a preset's eval pipeline into its loader (``LoadVolumed``) and the
rest, on private copies whose dictionary transforms accept a record without a label.
:func:`restore_geometry` maps a prediction made on the preprocessed grid back to the source grid:
first by inverting the pipeline's invertible transforms (``Orientationd``, ``CropForegroundd``,
``Spacingd``, ``SpatialPadd``, ``ResizeWithPadOrCropd``, ``Resized``: MONAI records each of them
in the MetaTensor's ``applied_operations``), else by resampling with the two affines.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform, ResizeWithPadOrCropd, SpatialPadd

from medtransfer.errors import ConfigError
from medtransfer.transforms import LoadVolumed

__all__ = ["RESTORE_MODES", "pipeline_roi_size", "prepare_pipeline", "restore_geometry"]

RESTORE_MODES = ("auto", "invert", "resample")
_AFFINE_TOLERANCE_MM = 1e-3


def prepare_pipeline(preset: Any, image_key: str | None) -> tuple[LoadVolumed, Compose, str]:
    """``(loader, rest, image_key)`` from a preset pair ``(train, eval)`` or an eval ``Compose``.

    The copies' dictionary transforms get ``allow_missing_keys=True``: segmentation presets list
    the label key, and inference has no label.
    """
    if isinstance(preset, tuple | list) and len(preset) == 2:
        preset = preset[1]
    if not isinstance(preset, Compose):
        raise ConfigError(
            "preset must be the (train_transform, eval_transform) pair returned by "
            "mt.transforms.presets.ct/mri/xray, or its eval Compose; got "
            f"{type(preset).__name__}."
        )
    transforms = list(copy.deepcopy(preset).flatten().transforms)
    for transform in transforms:
        if isinstance(transform, MapTransform):
            transform.allow_missing_keys = True
    loaders = [i for i, t in enumerate(transforms) if isinstance(t, LoadVolumed)]
    if loaders != [0]:
        raise ConfigError(
            "The eval pipeline must start with one mt.transforms.LoadVolumed (as every preset "
            "does), so that paths and tensors are loaded the same way."
        )
    loader = transforms[0]
    key = image_key if image_key is not None else str(loader.keys[0])
    if key not in loader.keys:
        raise ConfigError(f"image_key={key!r} is not loaded by the pipeline (keys {loader.keys}).")
    return loader, Compose(transforms[1:]), key


def pipeline_roi_size(pipeline: Compose, image_key: str, spatial_dims: int) -> tuple[int, ...]:
    """The size the pipeline pads the image to (the preset's ``roi_size``); ``()`` if none."""
    for transform in pipeline.transforms:
        if not isinstance(transform, SpatialPadd | ResizeWithPadOrCropd):
            continue
        if image_key not in list(transform.keys):
            continue
        inner = transform.padder  # SpatialPad, or ResizeWithPadOrCrop holding a SpatialPad
        size = getattr(inner, "spatial_size", None) or getattr(inner.padder, "spatial_size", None)
        size = tuple(int(s) for s in np.atleast_1d(size))
        if len(size) >= spatial_dims and all(s > 0 for s in size[:spatial_dims]):
            return size[:spatial_dims]
    return ()


def _matches(image: torch.Tensor, shape: Sequence[int], affine: np.ndarray) -> bool:
    if tuple(image.shape[1:]) != tuple(shape) or not isinstance(image, MetaTensor):
        return False
    found = image.affine.detach().cpu().numpy().astype(np.float64)
    return found.shape == affine.shape and np.allclose(found, affine, atol=_AFFINE_TOLERANCE_MM)


def _invert(prediction: MetaTensor, pipeline: Compose, image_key: str) -> torch.Tensor | None:
    # A private copy of the operation stack: inverse() pops it, and the fallback still needs it.
    work = MetaTensor(
        prediction.as_tensor(),
        meta=dict(prediction.meta),
        applied_operations=copy.deepcopy(prediction.applied_operations),
    )
    try:
        return pipeline.inverse({image_key: work})[image_key]
    except Exception:  # a transform whose inverse cannot run on this stack: resample instead
        return None


def _resample(prediction: MetaTensor, shape: Sequence[int], affine: np.ndarray) -> torch.Tensor:
    from monai.transforms import SpatialResample

    resample = SpatialResample(mode="bilinear", padding_mode="zeros", dtype=torch.float32)
    source = MetaTensor(prediction.as_tensor().float(), affine=prediction.affine.clone())
    return resample(source, dst_affine=torch.as_tensor(affine), spatial_size=tuple(shape))


def restore_geometry(
    prediction: MetaTensor,
    pipeline: Compose,
    image_key: str,
    shape: Sequence[int],
    affine: np.ndarray,
    mode: str = "auto",
) -> torch.Tensor:
    """Map channel-first probabilities on the pipeline's grid to the source grid ``(shape, affine)``.

    Args:
        prediction: ``(K, *spatial)`` MetaTensor carrying the preprocessed image's affine and
            ``applied_operations``.
        pipeline: the pipeline that made the preprocessed image (without the loader).
        image_key: the key the pipeline's transforms recorded their operations under.
        shape: the source image's spatial shape.
        affine: the source image's voxel-to-world affine.
        mode: ``"invert"`` (inverse transforms, error when they do not give the source grid),
            ``"resample"`` (trilinear resampling from the prediction's affine), or ``"auto"``
            (invert, falling back to resampling).

    Returns:
        A plain float tensor ``(K, *shape)``; voxels outside the preprocessed field of view
        (outside the foreground crop) are 0.
    """
    if mode not in RESTORE_MODES:
        raise ConfigError(f"restore={mode!r} is not supported; allowed values: {RESTORE_MODES}.")
    if mode != "resample":
        inverted = _invert(prediction, pipeline, image_key)
        if inverted is not None and _matches(inverted, shape, affine):
            return inverted.as_tensor().float()
        if mode == "invert":
            raise ConfigError(
                "The eval pipeline cannot be inverted back to the source grid (a transform "
                "changes the geometry without recording it); use restore='auto' or 'resample'."
            )
    restored = _resample(prediction, shape, affine)
    if not _matches(restored, shape, affine):
        raise ConfigError(
            "The prediction could not be resampled to the source grid; its affine does not "
            "describe its voxels (a custom transform changed the geometry without updating it)."
        )
    return restored.as_tensor().float()
