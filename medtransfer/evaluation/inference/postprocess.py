"""Post-processing of predicted label maps: largest component, small islands, holes (per class).

Nothing is applied unless asked, and each step is asked for per class: keeping only the largest
connected component suits one organ (the liver) and destroys structures that come in several
parts (white matter, both kidneys as one class, several lesions). Measure each step on
validation cases (``evaluate_segmentation`` reports Dice with and without) before using it.

Every function takes a label map (integer values, 0 = background) as a ``MetaTensor``, a tensor
or a numpy array of any number of spatial dimensions and returns the same type with the same
shape, dtype and metadata. Each class is processed on its own binary mask with scikit-image /
SciPy (``skimage.measure.label``, ``scipy.ndimage.binary_fill_holes``); removed voxels become
background (0), filled voxels take the class value.

Connectivity follows ``skimage.measure.label``: ``connectivity=None`` is full connectivity (in 3D,
voxels touching by a face, an edge or a corner are connected); ``1`` is face connectivity only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError

__all__ = ["fill_holes", "keep_largest_component", "postprocess", "remove_small_islands"]


def _as_numpy(mask: Any) -> np.ndarray:
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu()
        mask = mask.as_tensor() if hasattr(mask, "as_tensor") else mask
        return mask.numpy()
    return np.asarray(mask)


def _like(result: np.ndarray, mask: Any) -> Any:
    """Return ``result`` as the type of ``mask`` (MetaTensor keeps meta and affine)."""
    if isinstance(mask, np.ndarray):
        return result
    if hasattr(mask, "detach"):
        import torch

        out = torch.as_tensor(result, device=mask.device)
        if hasattr(mask, "meta"):
            from monai.data import MetaTensor

            return MetaTensor(out, meta=dict(mask.meta), applied_operations=[])
        return out
    return result


def _check_labels(array: np.ndarray, labels: int | Sequence[int] | None) -> list[int]:
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        raise ConfigError(
            "The mask holds non-integer values; post-processing needs a label map "
            "(predict(..., output='labels')), not probabilities."
        )
    present = [int(v) for v in np.unique(array) if v != 0]
    wanted = _wanted(labels)
    return present if wanted is None else [v for v in wanted if v in present]


def _wanted(labels: int | Sequence[int] | None) -> list[int] | None:
    """Class values as a list of ints (None: every class); background is refused."""
    if labels is None:
        return None
    wanted = [int(labels)] if np.isscalar(labels) else [int(v) for v in labels]
    if any(v == 0 for v in wanted):
        raise ConfigError("labels must not contain 0 (background is never post-processed).")
    return wanted


def _restrict(option: bool | int | Sequence[int], labels: Any) -> list[int] | None | bool:
    """The classes a step of ``postprocess`` applies to: False (skip), None (all) or values."""
    if option is False or option is None:
        return False
    wanted = _wanted(labels)
    if option is True:
        return wanted
    chosen = _wanted(option) or []
    return [v for v in chosen if wanted is None or v in wanted]


def _components(binary: np.ndarray, connectivity: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of ``binary`` and their sizes in voxels (index 0 = background)."""
    from skimage.measure import label

    components = label(binary, connectivity=connectivity)
    return components, np.bincount(components.ravel())


def _voxel_volume(mask: Any, spacing: float | Sequence[float] | None, ndim: int) -> float:
    if spacing is None and hasattr(mask, "affine"):
        affine = mask.affine.detach().cpu().numpy().astype(np.float64)
        spacing = np.linalg.norm(affine[: min(ndim, 3), : min(ndim, 3)], axis=0)
    if spacing is None:
        raise ConfigError(
            "remove_small_islands needs the voxel size: pass spacing=(sx, sy, sz) in mm, or a "
            "MetaTensor with an affine (e.g. the output of predict or mt.io.load)."
        )
    values = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,))
    if not np.all(values > 0):
        raise ConfigError(f"spacing={spacing!r} must be positive voxel sizes in mm.")
    return float(np.prod(values))


def keep_largest_component(
    mask: Any, labels: int | Sequence[int] | None = None, connectivity: int | None = None
) -> Any:
    """Keep, for each class, only its largest connected component (the rest becomes background).

    Args:
        mask: label map (MetaTensor, tensor or array), 0 = background.
        labels: class values to process (default: every non-zero value present).
        connectivity: ``None`` (full) or ``1`` (faces only), as ``skimage.measure.label``.

    Returns:
        The cleaned label map, same type, shape and dtype. Ties keep the first component found.

    Example:
        >>> import numpy as np
        >>> m = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [2, 0, 2, 2]], np.uint8)
        >>> keep_largest_component(m).tolist()
        [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 2, 2]]
    """
    array = _as_numpy(mask).copy()
    for value in _check_labels(array, labels):
        components, sizes = _components(array == value, connectivity)
        sizes[0] = 0
        array[(components > 0) & (components != int(sizes.argmax()))] = 0
    return _like(array, mask)


def remove_small_islands(
    mask: Any,
    min_volume_mm3: float | Mapping[int, float],
    spacing: float | Sequence[float] | None = None,
    labels: int | Sequence[int] | None = None,
    connectivity: int | None = None,
) -> Any:
    """Remove connected components smaller than ``min_volume_mm3`` (per class).

    Args:
        mask: label map; a MetaTensor gives the voxel size through its affine.
        min_volume_mm3: components with a volume below this (mm^3; mm^2 for 2D maps) are
            removed; one value for every class in ``labels``, or ``{class value: volume}``
            (other classes untouched).
        spacing: voxel size in mm (one value or one per axis); wins over the mask's affine.
        labels: class values to process (default: all non-zero values present).
        connectivity: ``None`` (full) or ``1`` (faces only).

    Example:
        >>> import numpy as np
        >>> m = np.zeros((1, 8), np.uint8); m[0, :3] = 1; m[0, 6] = 1
        >>> remove_small_islands(m, 5.0, spacing=(1.0, 2.0)).tolist()  # 6 mm^2 kept, 2 mm^2 removed
        [[1, 1, 1, 0, 0, 0, 0, 0]]
        >>> m[0, 4] = 2
        >>> remove_small_islands(m, {2: 5.0}, spacing=(1.0, 2.0)).tolist()  # class 2 only
        [[1, 1, 1, 0, 0, 0, 1, 0]]
    """
    volumes = None
    if isinstance(min_volume_mm3, Mapping):
        volumes = {int(k): float(v) for k, v in min_volume_mm3.items()}
        labels = _restrict(list(volumes), labels)
    for volume in volumes.values() if volumes is not None else [min_volume_mm3]:
        if not volume >= 0:
            raise ConfigError(f"min_volume_mm3={min_volume_mm3!r} must be >= 0.")
    array = _as_numpy(mask).copy()
    voxel = _voxel_volume(mask, spacing, array.ndim)
    for value in _check_labels(array, labels):
        limit = volumes[value] if volumes is not None else float(min_volume_mm3)
        components, sizes = _components(array == value, connectivity)
        small = sizes * voxel < limit
        small[0] = False
        array[small[components]] = 0
    return _like(array, mask)


def fill_holes(
    mask: Any, labels: int | Sequence[int] | None = None, slice_axis: int | None = None
) -> Any:
    """Fill background holes enclosed by a class with that class (``binary_fill_holes``).

    Only background voxels are filled: another class inside an organ (a lesion in the liver) is
    never overwritten. Classes are filled in increasing order.

    Args:
        mask: label map, 0 = background.
        labels: class values to process (default: all non-zero values present).
        slice_axis: fill holes in each 2D slice along this axis (a hole open at the top and
            bottom of a 3D organ is still closed in every slice); ``None`` fills in n-D.

    Example:
        >>> import numpy as np
        >>> m = np.ones((3, 3), np.uint8); m[1, 1] = 0
        >>> fill_holes(m).tolist()
        [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
    """
    from scipy.ndimage import binary_fill_holes

    array = _as_numpy(mask).copy()
    for value in _check_labels(array, labels):
        binary = array == value
        if slice_axis is None:
            filled = binary_fill_holes(binary)
        else:
            moved = np.moveaxis(binary, slice_axis, 0)
            filled = np.moveaxis(np.stack([binary_fill_holes(s) for s in moved]), 0, slice_axis)
        array[filled & (array == 0)] = value
    return _like(array, mask)


def postprocess(
    mask: Any,
    largest_component: bool | int | Sequence[int] = False,
    min_island_mm3: float | Mapping[int, float] | None = None,
    fill_holes: bool | int | Sequence[int] = False,
    *,
    labels: int | Sequence[int] | None = None,
    spacing: float | Sequence[float] | None = None,
    connectivity: int | None = None,
) -> Any:
    """Apply the steps asked for, per class, in a fixed order: small islands, largest component, holes.

    Nothing is done by default. Each step takes ``True`` (every class in ``labels``) or the class
    values it applies to: ``largest_component=[1]`` reduces the liver (1) to one component and
    leaves several lesions (2) alone.

    Args:
        mask: label map (MetaTensor, tensor or array), 0 = background.
        largest_component: keep only the largest connected component of these classes.
        min_island_mm3: remove components smaller than this volume (mm^3) from every class, or
            ``{class value: volume}``; ``None`` skips it.
        fill_holes: fill background holes enclosed by these classes.
        labels: restricts every step to these classes (default: all present).
        spacing: voxel size in mm for ``min_island_mm3`` (default: the MetaTensor's affine).
        connectivity: ``None`` (full) or ``1`` (faces only).

    Example:
        >>> import numpy as np
        >>> m = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [1, 1, 1, 0]], np.uint8)
        >>> postprocess(m).tolist() == m.tolist()  # opt-in: nothing by default
        True
        >>> postprocess(m, largest_component=[1], fill_holes=True, connectivity=1).tolist()
        [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    """
    out = mask
    if min_island_mm3 is not None:
        out = remove_small_islands(out, min_island_mm3, spacing, labels, connectivity)
    which = _restrict(largest_component, labels)
    if which is not False:
        out = keep_largest_component(out, which, connectivity)
    which = _restrict(fill_holes, labels)
    if which is not False:
        out = _fill_holes(out, which)
    return out


_fill_holes = fill_holes  # ``postprocess`` shadows the name with its boolean argument
