"""Input checks shared by the segmentation metrics: label maps or one-hot masks, and spacing.

Segmentation inputs are batched and channel-first, as in MONAI:

- an integer label map of shape ``(B, 1, *spatial)`` (values ``0..num_classes-1``; any dtype
  whose values are whole numbers, so MONAI's float32 labels work), or
- a one-hot (or multi-label) mask of shape ``(B, C, *spatial)`` with ``C >= 2`` and values 0/1.

A single channel is always read as a label map, so a binary 0/1 mask ``(B, 1, ...)`` is class 1.

Prediction and reference may use different layouts (e.g. a one-hot prediction against a label
map). Spatial dimensions are 2 or 3. Everything is converted to boolean one-hot torch tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medtransfer.errors import ConfigError

__all__ = ["SegmentationPair", "prepare_segmentation", "resolve_spacing"]


@dataclass(frozen=True)
class SegmentationPair:
    """Boolean one-hot prediction and reference, shape ``(B, C, *spatial)``, plus spacing (B, D)."""

    pred: torch.Tensor
    target: torch.Tensor
    spacing: np.ndarray
    first_class: int  # label of column 0 (1 when the background channel was dropped)

    @property
    def pred_present(self) -> np.ndarray:
        """(B, C) True where the prediction contains the class."""
        return self.pred.flatten(2).any(dim=2).numpy()

    @property
    def target_present(self) -> np.ndarray:
        """(B, C) True where the reference contains the class."""
        return self.target.flatten(2).any(dim=2).numpy()


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if hasattr(x, "as_tensor"):  # MetaTensor -> plain tensor, so metadata does not travel along
        x = x.as_tensor()
    if isinstance(x, np.ndarray):
        try:
            x = torch.from_numpy(np.ascontiguousarray(x))
        except TypeError:
            raise ConfigError(f"{name} has numpy dtype {x.dtype}, which is not numeric.") from None
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}.")
    x = x.detach().cpu()
    if x.ndim not in (4, 5):
        raise ConfigError(
            f"{name} has shape {tuple(x.shape)}; expected (B, 1, *spatial) label maps or "
            "(B, C, *spatial) one-hot masks with 2 or 3 spatial dimensions. "
            "Add batch/channel axes with x[None] or x[:, None]."
        )
    return x


def _check_label_map(x: torch.Tensor, name: str) -> None:
    if x.dtype == torch.bool:
        return
    if x.is_floating_point() and not bool(torch.all(x == torch.round(x))):
        raise ConfigError(
            f"{name} is a label map (one channel) but holds non-integer values; pass class "
            "indices (e.g. argmax over channels) or a one-hot mask."
        )
    if x.numel() and int(x.min()) < 0:
        raise ConfigError(f"{name} holds negative labels (min {int(x.min())}); labels start at 0.")


def _check_one_hot(x: torch.Tensor, name: str) -> None:
    if x.dtype == torch.bool:
        return
    if not bool(torch.all((x == 0) | (x == 1))):
        raise ConfigError(
            f"{name} has shape {tuple(x.shape)} and is read as a one-hot mask (C={x.shape[1]} "
            "channels) but holds values other than 0 and 1. Threshold or argmax probabilities "
            "first; a channel-less label map needs a channel axis: x[:, None]."
        )


def _to_one_hot(x: torch.Tensor, num_classes: int, name: str) -> torch.Tensor:
    if x.shape[1] != 1:
        if x.shape[1] != num_classes:
            raise ConfigError(
                f"{name} has {x.shape[1]} channels but num_classes is {num_classes}; "
                "they must agree for one-hot masks."
            )
        return x.bool()
    labels = x[:, 0].long()
    if labels.numel() and int(labels.max()) >= num_classes:
        raise ConfigError(
            f"{name} holds label {int(labels.max())} but num_classes is {num_classes}; "
            "labels must lie in 0..num_classes-1."
        )
    return torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1).bool()


def _spacing_from_meta(x: Any) -> np.ndarray | None:
    meta = getattr(x, "meta", None)
    if not isinstance(meta, dict) or meta.get("spacing") is None:
        return None
    value = meta["spacing"]
    # A DataLoader collates a per-case tuple (sx, sy, sz) into D tensors of shape (B,).
    if isinstance(value, (list, tuple)) and value and all(np.ndim(v) == 1 for v in value):
        return np.stack([np.asarray(v, dtype=np.float64) for v in value], axis=1)
    return np.asarray(value, dtype=np.float64)


def _spacing_from_affine(x: Any, spatial_dims: int) -> np.ndarray | None:
    """Column norms of a MetaTensor's affine (one per case when batched); None if identity."""
    affine = getattr(x, "affine", None)
    if affine is None or not hasattr(x, "meta"):
        return None
    a = np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[-1] - 1 < spatial_dims or np.allclose(a, np.eye(a.shape[-1])):
        return None  # MONAI's default identity affine says nothing about the spacing
    spacing = np.linalg.norm(a[:, :-1, :spatial_dims], axis=1)
    return spacing[0] if spacing.shape[0] == 1 else spacing


def resolve_spacing(spacing: Any, batch: int, spatial_dims: int) -> np.ndarray:
    """Spacing per case as a ``(batch, spatial_dims)`` float array in mm.

    Args:
        spacing: None (1 per axis, distances in voxels), one number (isotropic), one value per
            spatial axis (shared by the batch), or one row per case ``(batch, spatial_dims)``.
        batch: number of cases.
        spatial_dims: 2 or 3.

    Example:
        >>> resolve_spacing((2.0, 1.0), batch=2, spatial_dims=2).tolist()
        [[2.0, 1.0], [2.0, 1.0]]
    """
    if spacing is None:
        return np.ones((batch, spatial_dims))
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().numpy()
    try:
        arr = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"spacing {spacing!r} is not numeric: {err}") from None
    if arr.ndim == 0:
        arr = np.full((batch, spatial_dims), float(arr))
    elif arr.ndim == 1 and arr.shape[0] == spatial_dims:
        arr = np.tile(arr, (batch, 1))
    elif arr.ndim != 2 or arr.shape != (batch, spatial_dims):
        raise ConfigError(
            f"spacing has shape {arr.shape}; expected a number, {spatial_dims} values (one per "
            f"spatial axis) or ({batch}, {spatial_dims}) (one row per case)."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError(f"spacing must be finite and positive (mm), got {arr.tolist()}.")
    return arr


def prepare_segmentation(
    pred: Any,
    target: Any,
    spacing: Any = None,
    num_classes: int | None = None,
    include_background: bool = False,
) -> SegmentationPair:
    """Check and convert a prediction/reference pair to boolean one-hot masks.

    Args:
        pred: label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        target: the reference, same layouts.
        spacing: see :func:`resolve_spacing`. When None: ``meta["spacing"]`` of a MetaTensor
            ``target`` (then ``pred``), else the column norms of its affine (unless identity),
            else 1.
        num_classes: number of classes including background; inferred when None (the channel
            count of a one-hot input, else the largest label + 1).
        include_background: keep channel/label 0 (background). A single-channel input is a
            label map, so a binary mask gives one column (class 1) without background.

    Example:
        >>> import torch
        >>> pair = prepare_segmentation(torch.tensor([[[[0, 1], [2, 2]]]]), torch.zeros(1, 1, 2, 2))
        >>> tuple(pair.pred.shape), pair.first_class
        ((1, 2, 2, 2), 1)
    """
    p, t = _as_tensor(pred, "pred"), _as_tensor(target, "target")
    spatial_dims = p.ndim - 2
    for source in (_spacing_from_meta, lambda x: _spacing_from_affine(x, spatial_dims)):
        for x in (target, pred):
            if spacing is None:
                spacing = source(x)
    if p.shape[0] != t.shape[0] or p.shape[2:] != t.shape[2:]:
        raise ConfigError(
            f"pred shape {tuple(p.shape)} and target shape {tuple(t.shape)} differ in batch or "
            "spatial size; they must describe the same cases on the same grid."
        )
    for x, name in ((p, "pred"), (t, "target")):
        (_check_label_map if x.shape[1] == 1 else _check_one_hot)(x, name)
    if num_classes is None:
        channels = [x.shape[1] for x in (p, t) if x.shape[1] > 1]
        if channels:
            num_classes = channels[0]
        else:
            top = max(int(x.max()) if x.numel() else 0 for x in (p, t))
            num_classes = max(top + 1, 2)
    elif not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(
            f"num_classes must be an integer >= 2 (background included), got {num_classes!r}."
        )
    p1, t1 = _to_one_hot(p, int(num_classes), "pred"), _to_one_hot(t, int(num_classes), "target")
    first_class = 0
    if not include_background:
        p1, t1, first_class = p1[:, 1:], t1[:, 1:], 1
    return SegmentationPair(
        pred=p1,
        target=t1,
        spacing=resolve_spacing(spacing, p.shape[0], spatial_dims),
        first_class=first_class,
    )


def image_diagonal_mm(spatial_shape: Sequence[int], spacing: np.ndarray) -> float:
    """Largest distance between two voxel centres of the grid, in mm.

    Example:
        >>> image_diagonal_mm((4, 5), np.array([1.0, 1.0]))
        5.0
    """
    extent = (np.asarray(spatial_shape, dtype=np.float64) - 1.0) * spacing
    return float(np.sqrt(np.sum(extent**2)))
