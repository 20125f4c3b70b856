"""The building blocks of the presets, one small function per step (each returns MONAI transforms).

Image keys and label keys are always passed separately: label maps only ever get nearest
interpolation, padding with 0 (or edge copies) and crops, never an intensity operation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from monai.transforms import (
    BorderPadd,
    CropForegroundd,
    Orientationd,
    RandAffined,
    RandCropByLabelClassesd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    ResizeWithPadOrCropd,
    Spacingd,
    SpatialPadd,
)

__all__ = [
    "augmentation",
    "centre_fit",
    "foreground_crop",
    "label_balanced_crop",
    "orientation",
    "pad_to",
    "random_crop",
    "resampling",
    "slab_padding",
]

#: Axis labels passed explicitly: MONAI warns that its default will change.
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_ROTATE = math.pi / 12  # 15 degrees: small enough that anatomy stays plausible


def _above(image: torch.Tensor, threshold: float) -> torch.Tensor:
    return image > threshold


def orientation(keys: Sequence[str]) -> list[Any]:
    """Reorient to RAS (x: patient left, y: anterior, z: superior; z is the axial slice axis)."""
    return [Orientationd(list(keys), axcodes="RAS", labels=RAS_LABELS)]


def resampling(
    image_keys: Sequence[str], label_keys: Sequence[str], spacing: Sequence[float] | None
) -> list[Any]:
    """Resample to ``spacing`` mm (images bilinear, labels nearest); ``None``: no resampling."""
    if spacing is None:
        return []
    keys = [*image_keys, *label_keys]
    modes = ["bilinear"] * len(image_keys) + ["nearest"] * len(label_keys)
    return [Spacingd(keys, pixdim=tuple(spacing), mode=modes, padding_mode="border")]


def foreground_crop(
    image_keys: Sequence[str], label_keys: Sequence[str], threshold: float | None, margin: int = 2
) -> list[Any]:
    """Crop every key to the box where the first image key exceeds ``threshold`` (None: no crop)."""
    if threshold is None:
        return []
    return [
        CropForegroundd(
            [*image_keys, *label_keys],
            source_key=image_keys[0],
            select_fn=functools.partial(_above, threshold=threshold),  # picklable for workers
            margin=margin,
            allow_smaller=True,
        )
    ]


def label_balanced_crop(
    image_keys: Sequence[str],
    label_key: str,
    size: Sequence[int],
    num_samples: int,
    num_classes: int | None,
) -> list[Any]:
    """Pad to ``size``, then draw ``num_samples`` crops centred on labelled voxels half the time.

    With ``num_classes`` the centres are balanced over the classes (``RandCropByLabelClassesd``),
    so small structures are seen as often as large ones; otherwise foreground vs background.
    """
    keys = [*image_keys, label_key]
    if num_classes is not None:
        crop: Any = RandCropByLabelClassesd(
            keys,
            label_key=label_key,
            spatial_size=tuple(size),
            num_classes=num_classes,
            num_samples=num_samples,
            warn=False,
        )
    else:
        crop = RandCropByPosNegLabeld(
            keys,
            label_key=label_key,
            spatial_size=tuple(size),
            pos=1.0,
            neg=1.0,
            num_samples=num_samples,
        )
    return [SpatialPadd(keys, spatial_size=tuple(size)), crop]


def random_crop(keys: Sequence[str], size: Sequence[int]) -> list[Any]:
    """Pad to ``size`` and take one uniformly random crop of that size."""
    return [SpatialPadd(list(keys), spatial_size=tuple(size)), RandSpatialCropd(list(keys), size)]


def centre_fit(keys: Sequence[str], size: Sequence[int]) -> list[Any]:
    """Pad or crop symmetrically to ``size`` (``-1`` keeps an axis as it is)."""
    return [ResizeWithPadOrCropd(list(keys), spatial_size=tuple(size))]


def pad_to(keys: Sequence[str], size: Sequence[int]) -> list[Any]:
    """Pad (never crop) to at least ``size`` (``-1`` keeps an axis as it is)."""
    return [SpatialPadd(list(keys), spatial_size=tuple(size))]


def slab_padding(keys: Sequence[str], context: int) -> list[Any]:
    """Repeat the first and last slice ``context`` times, so every slice can centre a slab.

    Labels are repeated too (not zero-padded), so a slab centred on a repeated slice still has
    the label of the slice it shows.
    """
    if context == 0:
        return []
    return [BorderPadd(list(keys), spatial_border=[0, 0, 0, 0, context, context], mode="edge")]


def augmentation(
    image_keys: Sequence[str],
    label_keys: Sequence[str],
    spatial_dims: int,
    flip_axes: Sequence[int],
    affine_prob: float = 0.3,
    intensity_prob: float = 0.5,
) -> list[Any]:
    """Random flips, a small affine (15 degrees in-plane, 10 % scale) and intensity scale/shift.

    The affine uses nearest interpolation for labels; intensity changes touch image keys only.
    """
    keys = [*image_keys, *label_keys]
    steps: list[Any] = [RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in flip_axes]
    rotate = (_ROTATE,) if spatial_dims == 2 else (0.0, 0.0, _ROTATE)
    modes = ["bilinear"] * len(image_keys) + ["nearest"] * len(label_keys)
    steps.append(
        RandAffined(
            keys,
            prob=affine_prob,
            rotate_range=rotate,
            scale_range=(0.1,) * spatial_dims,
            mode=modes,
            padding_mode="zeros",
        )
    )
    steps.append(RandScaleIntensityd(list(image_keys), factors=0.1, prob=intensity_prob))
    steps.append(RandShiftIntensityd(list(image_keys), offsets=0.1, prob=intensity_prob))
    return steps
