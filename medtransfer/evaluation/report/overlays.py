"""Display slices for report overlays: radiological orientation, a window, the slice to show.

A 3D case is reoriented (axis permutations and flips only, no resampling) so that the displayed
axial slice has the patient's right on the viewer's left and anterior at the top, as on a PACS
screen. The slice shown is the one with the largest reference area (the prediction's when the
reference is empty). Grey values are stored as uint8 after the display window, so a slice kept
for every case until the best, median and worst are known costs rows x cols x 3 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.report import OverlaySlice

__all__ = ["display_slice", "pick_examples", "resolve_window"]


def resolve_window(window: Any, image: np.ndarray, modality: str | None) -> tuple | None:
    """``"auto"`` -> the abdomen window (40, 400) for CT, else None (percentiles).

    Example:
        >>> resolve_window("auto", np.array([-1000.0, 50.0]), None), resolve_window(None, None, "CT")
        ((40.0, 400.0), None)
    """
    if window is None:
        return None
    if isinstance(window, str):
        if window != "auto":
            raise ConfigError(f"display_window={window!r}; use 'auto', None or (level, width).")
        is_ct = modality == "CT" or (image.size and float(np.min(image)) < -500.0)
        return (40.0, 400.0) if is_ct else None
    try:
        level, width = (float(v) for v in window)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"display_window={window!r} must be (level, width), e.g. (40, 400)."
        ) from err
    if width <= 0:
        raise ConfigError(f"display_window width {width} must be positive.")
    return level, width


def _to_uint8(image: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    if window is None:
        low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    else:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    scaled = (image.astype(np.float64) - low) / max(float(high - low), 1e-6)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _radiological(volume: np.ndarray, affine: np.ndarray) -> tuple[Any, np.ndarray]:
    """Orientation transform to L, P, S axes (so ``slice.T`` is a radiological axial view)."""
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    transform = ornt_transform(io_orientation(affine), axcodes2ornt(("L", "P", "S")))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    reoriented = np.empty(3)
    for axis, (target, _) in enumerate(transform):
        reoriented[int(target)] = spacing[axis]
    return transform, reoriented


def display_slice(
    image: Any,
    reference: Any,
    prediction: Any,
    affine: Any,
    *,
    case_id: str,
    dice: Mapping[str, float],
    window: tuple[float, float] | None,
) -> OverlaySlice:
    """The overlay slice of one case (role is filled in later by :func:`pick_examples`).

    Args:
        image: the source image (2D or 3D array) on the same grid as the masks.
        reference, prediction: label maps on that grid.
        affine: 4x4 voxel-to-world matrix of the grid (identity display for 2D).
        case_id: the case.
        dice: Dice per class name of the whole case (for the caption).
        window: ``(level, width)`` for the grey values, or None for the 1-99th percentiles.

    Example:
        >>> import numpy as np
        >>> ref = np.zeros((6, 5, 4), np.uint8); ref[1:4, 1:3, 2] = 1
        >>> s = display_slice(np.zeros((6, 5, 4)), ref, ref, np.diag([-1.0, -2.0, 3.0, 1.0]),
        ...                   case_id="c1", dice={"liver": 1.0}, window=(40, 400))
        >>> s.slice_index, s.image.shape, s.aspect
        (2, (5, 6), 2.0)
    """
    arrays = [np.asarray(a) for a in (image, reference, prediction)]
    if arrays[0].ndim == arrays[1].ndim + 1 and arrays[0].shape[0] == 1:
        arrays[0] = arrays[0][0]  # a channel-first image (1, *spatial)
    if arrays[0].ndim == 2:
        img, ref, pred = arrays
        index, count, aspect = 0, 1, 1.0
    elif arrays[0].ndim == 3:
        from nibabel.orientations import apply_orientation

        transform, spacing = _radiological(arrays[0], np.asarray(affine, dtype=np.float64))
        img, ref, pred = (apply_orientation(a, transform) for a in arrays)
        area = (ref > 0).sum(axis=(0, 1))
        if not area.any():
            area = (pred > 0).sum(axis=(0, 1))
        index = int(area.argmax()) if area.any() else ref.shape[2] // 2
        count = int(ref.shape[2])
        img, ref, pred = (a[:, :, index].T for a in (img, ref, pred))
        aspect = float(spacing[1] / spacing[0])
    else:
        raise ConfigError(f"overlays need 2D or 3D images, got shape {arrays[0].shape}.")
    return OverlaySlice(
        case_id=case_id,
        role="",
        slice_index=index,
        n_slices=count,
        image=_to_uint8(img, window),
        reference=np.ascontiguousarray(ref, dtype=np.uint8),
        prediction=np.ascontiguousarray(pred, dtype=np.uint8),
        aspect=aspect,
        dice=dict(dice),
        window=window,
        radiological=arrays[0].ndim == 3,
    )


def pick_examples(
    candidates: Sequence[OverlaySlice], scores: Mapping[str, float]
) -> list[OverlaySlice]:
    """The best, median and worst cases by score (NaN scores never picked), roles filled in.

    Example:
        >>> import numpy as np
        >>> z = np.zeros((2, 2), np.uint8)
        >>> c = [OverlaySlice(k, "", 0, 1, z, z, z) for k in "abcd"]
        >>> [(o.case_id, o.role) for o in pick_examples(c, {"a": .9, "b": .5, "c": .7, "d": .1})]
        [('a', 'best'), ('b', 'median'), ('d', 'worst')]
    """
    by_id = {c.case_id: c for c in candidates}
    ranked = sorted(
        (cid for cid, s in scores.items() if cid in by_id and np.isfinite(s)),
        key=lambda cid: scores[cid],
    )
    if not ranked:
        return []
    picks = {"best": ranked[-1], "median": ranked[(len(ranked) - 1) // 2], "worst": ranked[0]}
    chosen, seen = [], set()
    for role, cid in picks.items():
        if cid not in seen:
            seen.add(cid)
            chosen.append(replace(by_id[cid], role=role))
    return chosen
