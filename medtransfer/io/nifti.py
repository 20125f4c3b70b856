"""NIfTI read/write with nibabel, keeping nibabel's affine exactly (RAS+ mm)."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.errors import (
    DataWarning,
    InputPathError,
    MedTransferError,
    NiftiError,
    OutputPathError,
)
from medtransfer.io.atomic import atomic_path
from medtransfer.io.image import make_image
from medtransfer.io.limits import check_declared_bytes, check_memory_budget

__all__ = ["is_nifti_path", "load_nifti", "save_nifti"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Read by ``load`` too: FreeSurfer's MGH volumes (``.mgz`` is MGH gzipped), same RAS+ affine.
MGH_SUFFIXES = (".mgz", ".mgh")
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".mgz")  # nibabel decompresses these on the fly
# |det| / product of column lengths: 0 for collinear axes, 1 for orthogonal ones.
_SINGULAR_TOLERANCE = 1e-6


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """True for the volume files ``load_nifti`` reads: ``.nii``, ``.nii.gz``, ``.mgz``, ``.mgh``."""
    return str(path).lower().endswith(NIFTI_SUFFIXES + MGH_SUFFIXES)


def slope_inter(header: Any) -> tuple[Any, Any]:
    """NIfTI scaling; MGH has none."""
    get = getattr(header, "get_slope_inter", None)
    return get() if get is not None else (None, None)


def load_nifti(path: str | os.PathLike[str], dtype: Any = np.float32):
    """Read a NIfTI file into a MetaTensor whose affine is nibabel's ``img.affine``.

    Scaling (``scl_slope``/``scl_inter``) is applied. Trailing singleton axes beyond the third
    are dropped; a fourth axis longer than one (time, or several modalities as in the Medical
    Segmentation Decathlon) is kept last and flagged by ``meta["original_channel_dim"] = -1``.

    The header is checked before any voxel is read: the declared size must fit in an
    uncompressed file and in the memory budget (:mod:`medtransfer.io.limits`), and the affine
    must be finite and invertible. NaN or infinite voxels are kept but reported by a
    :class:`~medtransfer.errors.DataWarning` with their count.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        dtype: numpy dtype of the returned array; ``None`` keeps the stored type when no scaling
            applies (useful for label maps).

    Raises:
        InputPathError: the file does not exist.
        NiftiError: the file is truncated, damaged, not NIfTI, declares more data than it holds
            or than the memory budget allows, or has a singular/non-finite affine.

    Example:
        >>> import numpy as np, nibabel as nib, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
        >>> nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), np.diag([2.0, 2, 3, 1])), path)
        >>> img = load_nifti(path)
        >>> tuple(img.shape), img.meta["spacing"]
        ((3, 4, 5), (2.0, 2.0, 3.0))
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputPathError(
            f"NIfTI file not found: {path}. Check the path (and its .nii/.nii.gz suffix)."
        )
    try:
        img = nib.load(str(path))  # reads the header only
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image | nib.MGHImage):
            raise NiftiError(f"{path} is a {type(img).__name__}, not a NIfTI-1/2 or MGH image.")
        _check_declared_size(img, path, dtype)
        affine = checked_affine(img, path)
        if dtype is None:
            data = np.asanyarray(img.dataobj)
        elif np.dtype(dtype).kind == "f":
            data = img.get_fdata(dtype=np.dtype(dtype), caching="unchanged")
        else:
            data = np.asanyarray(img.dataobj).astype(dtype, copy=False)
    except MedTransferError:
        raise
    except MemoryError as err:
        raise NiftiError(
            f"Not enough memory to read NIfTI file {path}; free memory, or lower "
            "MEDTRANSFER_MAX_VOLUME_BYTES so that such files are refused up front."
        ) from err
    except Exception as err:  # nibabel, gzip, zlib, struct, numpy: many types for damaged files
        raise NiftiError(
            f"Cannot read NIfTI file {path}: {type(err).__name__}: {str(err)[:200]}. The file is "
            "truncated, damaged or not NIfTI; re-export it (e.g. with dcm2niix) or copy it again."
        ) from err
    _warn_non_finite(data, path)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    channel_last = data.ndim == 4
    return make_image(
        data,
        affine,
        source=str(path),
        channel_last=channel_last,
        extra={"format": "nifti", "stored_dtype": _stored_dtype(img)},
    )


def _stored_dtype(img: Any) -> str:
    """The type of the file's values: the on-disk type, or float64 when scl_slope/inter scale it.

    Always a string (never None): MONAI's collate cannot batch None or a key some items lack.
    """
    slope, inter = slope_inter(img.header)
    stored = np.dtype(img.get_data_dtype())
    unscaled = slope in (None, 1.0) and inter in (None, 0.0)
    return stored.name if unscaled else "float64"


def _keep_stored_dtype(array: np.ndarray, image: Any) -> np.ndarray:
    """Back to the stored integer type when a float image still holds exactly those values.

    ``mt.io.load`` returns float32 by default, so load-then-save of a uint8 label map would
    otherwise write float32 (4x the size, and some tools then treat it as a probability map).
    """
    meta = getattr(image, "meta", None) or {}
    try:
        stored = np.dtype(meta.get("stored_dtype") or "float32")
    except TypeError:  # not ours: leave the array alone
        return array
    if stored.kind not in "iub" or array.dtype.kind != "f" or not array.size:
        return array
    target = np.dtype(np.uint8) if stored.kind == "b" else stored
    info = np.iinfo(target)
    if not np.isfinite(array).all() or array.min() < info.min or array.max() > info.max:
        return array
    if not np.array_equal(array, np.round(array)):
        return array  # values changed (resampled, normalised): keep what they are now
    return array.astype(target)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(n)) for n in shape)


def _check_declared_size(img: Any, path: Path, dtype: Any) -> None:
    """Refuse, before reading any voxel, a header whose volume cannot be right or cannot fit."""
    header = img.header
    shape = tuple(int(n) for n in header.get_data_shape())
    stored = header.get_data_dtype()
    described = f"its header (dim {_shape_text(shape)}, {stored})"
    if not shape or min(shape) < 1:
        raise NiftiError(
            f"{path}: {described} declares an empty volume. The header is damaged; re-export it."
        )
    kept = list(shape)
    while len(kept) > 3 and kept[-1] == 1:  # trailing singleton axes are dropped on reading
        kept.pop()
    if len(kept) > 4:
        raise NiftiError(
            f"{path} has dimensions {_shape_text(shape)}; medtransfer reads 2D, 3D, or 3D plus "
            "one channel/time axis. Split the file into 3D/4D images first."
        )
    n_voxels = math.prod(shape)
    if not str(path).lower().endswith(_COMPRESSED_SUFFIXES):
        offset = getattr(img.dataobj, "offset", None)  # the loaded header's copy says 0
        offset = int(header["vox_offset"] if offset is None else offset)
        available = max(path.stat().st_size - offset, 0)
        check_declared_bytes(
            n_voxels * stored.itemsize, available, path=path, what=described, error=NiftiError
        )
    scaled = slope_inter(header) != (None, None)
    out_itemsize = np.dtype(dtype if dtype is not None else np.float64 if scaled else stored)
    check_memory_budget(
        n_voxels * max(stored.itemsize, out_itemsize.itemsize),
        path=path,
        what=f"the volume {described}",
        error=NiftiError,
    )


def checked_affine(img: Any, path: Path) -> np.ndarray:
    """nibabel's affine, refused when non-finite or singular (voxels would not map to places)."""
    affine = np.asarray(img.affine, dtype=np.float64)
    columns = np.linalg.norm(affine[:3, :3], axis=0) if np.all(np.isfinite(affine)) else None
    if (
        columns is None
        or not np.all(columns > 0)
        or abs(np.linalg.det(affine[:3, :3])) <= _SINGULAR_TOLERANCE * math.prod(columns)
    ):
        header = img.header
        codes = (
            f"sform_code {int(header['sform_code'])}, qform_code {int(header['qform_code'])}"
            if "sform_code" in header
            else "MGH vox2ras"
        )
        raise NiftiError(
            f"{path}: the voxel-to-world affine in its header ({codes}) is "
            f"{'singular' if columns is not None else 'not finite'}, so voxel positions and "
            "spacing are undefined. Fix the sform/qform (e.g. nibabel's img.set_sform(affine, "
            "code=1) with the scanner geometry) or re-export the image from its DICOM series."
        )
    return affine


def _warn_non_finite(data: np.ndarray, path: Path) -> None:
    if data.dtype.kind not in "fc" or np.isfinite(data).all():
        return
    count = int(data.size - np.count_nonzero(np.isfinite(data)))
    warnings.warn(
        f"{path}: {count} of {data.size} voxels are NaN or infinite. They are kept as they are; "
        "replace them (e.g. numpy.nan_to_num) before training, or fix the file.",
        DataWarning,
        stacklevel=3,
    )


def _is_rigid_with_scaling(affine: np.ndarray) -> bool:
    """A qform can only hold rotation + scaling (+ a flip): columns must be orthogonal."""
    columns = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return bool(np.allclose(columns.T @ columns, np.eye(3), atol=1e-5))


def _as_numpy(image: Any) -> np.ndarray:
    if hasattr(image, "detach"):
        image = image.detach().cpu()
        if hasattr(image, "as_tensor"):
            image = image.as_tensor()
        image = image.numpy()
    array = np.asarray(image)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.int64 and array.size and array.min() >= -32768 and array.max() < 32768:
        array = array.astype(np.int16)  # label maps: int64 is not a NIfTI datatype most tools read
    return array


def save_nifti(
    image: Any, path: str | os.PathLike[str], affine: Any = None, dtype: Any = None
) -> Path:
    """Write ``image`` to ``path`` (.nii or .nii.gz) atomically, keeping its affine.

    ``affine`` defaults to ``image.affine`` for a MetaTensor. The affine goes to the sform
    (code 1, scanner); the qform is also set when the affine has no shear (gantry tilt), so
    tools that read only the qform agree. Loading the file back gives an affine equal to the
    input's rounded to float32 (the NIfTI header's precision) and the same voxel values.

    Args:
        image: MetaTensor, torch tensor or numpy array, spatial axes first (channels last).
        path: destination ending in ``.nii`` or ``.nii.gz``.
        affine: 4x4 voxel-to-RAS+ mm; required unless ``image`` carries one.
        dtype: on-disk type (e.g. ``np.uint8``). ``None`` keeps the array's type, except that an
            image loaded from an integer NIfTI (``meta["stored_dtype"]``, e.g. a uint8 label map
            loaded as float32) is written back in that type while its values are still exactly
            integers in range.

    Returns:
        The path written.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "mask.nii.gz"
        >>> _ = save_nifti(np.zeros((4, 4, 4), np.uint8), out, affine=np.eye(4))
        >>> out.exists()
        True
    """
    import nibabel as nib

    path = Path(path)
    if not str(path).lower().endswith(NIFTI_SUFFIXES):
        raise NiftiError(f"Cannot save to {path}: the file name must end in .nii or .nii.gz.")
    if affine is None:
        affine = getattr(image, "affine", None)
        if affine is None:
            raise NiftiError(
                f"Cannot save {type(image).__name__} to {path} without an affine: pass affine= "
                "(a 4x4 voxel-to-RAS+ matrix) or a MetaTensor."
            )
    affine = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, np.float64)
    if affine.shape == (3, 3):  # a 2D affine: embed it in 3D
        full = np.eye(4)
        full[:2, :2], full[:2, 3] = affine[:2, :2], affine[:2, 2]
        affine = full
    if affine.shape != (4, 4):
        raise NiftiError(f"Cannot save to {path}: affine must be 4x4, got shape {affine.shape}.")
    array = _as_numpy(image)
    if dtype is None:
        array = _keep_stored_dtype(array, image)
    else:
        try:
            target = np.dtype(dtype)
        except TypeError as err:
            raise NiftiError(
                f"Cannot save to {path}: dtype={dtype!r} is not a numpy dtype."
            ) from err
        if target.kind in "iu" and array.size:
            info = np.iinfo(target)
            if not np.isfinite(array).all() or array.min() < info.min or array.max() > info.max:
                raise NiftiError(
                    f"Cannot save to {path} as {target.name}: values {array.min()}..{array.max()} "
                    "do not fit; choose a wider dtype."
                )
            array = np.round(array) if array.dtype.kind == "f" else array
        array = array.astype(target)
    nifti = nib.Nifti1Image(array, affine)
    nifti.header.set_sform(affine, code=1)
    if _is_rigid_with_scaling(affine):
        nifti.header.set_qform(affine, code=1)
    else:
        nifti.header.set_qform(None, code=0)
    nifti.header.set_xyzt_units(xyz="mm")
    try:
        with atomic_path(path) as tmp:
            nib.save(nifti, str(tmp))
    except OutputPathError:  # already names the path and the fix
        raise
    except OSError as err:
        raise NiftiError(
            f"Cannot write {path}: {err}. Check the folder exists and is writable."
        ) from err
    return path
