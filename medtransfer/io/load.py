"""``load``: one entry point for NIfTI files, DICOM folders and files, PNG, JPEG and TIFF images."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medtransfer.errors import ConfigError, DataWarning, DicomError, InputPathError, SeriesError
from medtransfer.io.dicom_file import load_dicom_file
from medtransfer.io.dicom_geometry import NonUniformPolicy, TiltPolicy
from medtransfer.io.dicom_header import SliceHeader
from medtransfer.io.dicom_voi import VoiPolicy, check_voi_policy
from medtransfer.io.dicom_volume import load_series_files
from medtransfer.io.nifti import is_nifti_path, load_nifti
from medtransfer.io.raster import load_raster, raster_format
from medtransfer.io.series_discovery import (
    ScanResult,
    describe_series,
    name_files,
    scan_folder,
    unreadable_members,
)

__all__ = ["choose_series", "load", "unreadable_members"]

SeriesPolicy = Literal["largest"]
UnreadablePolicy = Literal["error", "warn"]


def _handle_unreadable(
    folder: Path, scan: ScanResult, uid: str, headers: list[SliceHeader], policy: str
) -> None:
    members = unreadable_members(scan, uid, headers)
    if not members:
        return
    names = name_files([u.path for u in members], folder)
    if policy == "error":
        raise DicomError(
            f"{len(members)} file(s) in {folder} may be slices of series {uid} but cannot be "
            f"read: {names}. {members[0].reason} Nothing was loaded, because the volume could "
            "be missing those slices. Re-export or remove them, or pass on_unreadable='warn' to "
            "load the series without them."
        )
    warnings.warn(
        f"Skipped {len(members)} unreadable file(s) in {folder} that may be slices of series "
        f"{uid}: {names}. {members[0].reason} The volume is built from the other "
        f"{len(headers)} file(s); check that none is missing.",
        DataWarning,
        stacklevel=3,
    )


def choose_series(folder: Path, scan, series_uid: str | None, select: SeriesPolicy | None):
    """Pick one series of a folder scan: by uid, the only image series, or by ``select`` policy.

    Raises :class:`SeriesError` listing the series when the choice is ambiguous, and
    :class:`DicomError` when the folder holds no DICOM at all.
    """
    images = {
        uid: hs for uid, hs in scan.series.items() if any(h.has_pixels or h.is_enhanced for h in hs)
    }
    if series_uid is not None:
        if series_uid not in scan.series:
            listing = "\n".join(
                f"  {describe_series(u, h).summary()}" for u, h in scan.series.items()
            )
            raise SeriesError(f"Series {series_uid} is not in {folder}. Series found:\n{listing}")
        return series_uid, scan.series[series_uid]
    if not images:
        if scan.series:
            kinds = sorted({h.modality or "?" for hs in scan.series.values() for h in hs})
            raise SeriesError(
                f"{folder} holds DICOM files without image pixel data only ({', '.join(kinds)}); "
                "point at the folder of the image series they refer to."
            )
        detail = f"{scan.n_files} file(s) checked" if scan.n_files else "the folder is empty"
        raise DicomError(
            f"No DICOM files in {folder} ({detail}). Point at the folder that holds the .dcm "
            "files of one series, or pass a NIfTI file."
        )
    if len(images) == 1:
        uid = next(iter(images))
        return uid, images[uid]
    if select == "largest":
        uid = max(images, key=lambda u: (sum(h.frames for h in images[u]), u))
        return uid, images[uid]
    listing = "\n".join(
        f"  {describe_series(u, h).summary()}"
        for u, h in sorted(images.items(), key=lambda item: -len(item[1]))
    )
    raise SeriesError(
        f"{folder} holds {len(images)} image series; pick one with "
        f"mt.io.load(folder, series_uid=...) or select='largest':\n{listing}"
    )


def load(
    path: str | os.PathLike[str],
    series_uid: str | None = None,
    *,
    select: SeriesPolicy | None = None,
    dtype: Any = np.float32,
    nonuniform: NonUniformPolicy = "error",
    gantry_tilt: TiltPolicy = "warn",
    on_unreadable: UnreadablePolicy = "error",
    voi: VoiPolicy = "auto",
    spacing: float | Sequence[float] | None = None,
):
    """Load a NIfTI file, a DICOM series folder, a DICOM file or a PNG/JPEG/TIFF image.

    The result is channel-less and spatial, indexed (i, j, k) like nibabel, with ``.affine``
    mapping voxels to RAS+ millimetres (nibabel's affine for NIfTI; DICOM's LPS converted) and
    ``meta["spacing"]`` in mm. DICOM slices are ordered by position along the slice normal
    (never by file name or InstanceNumber), the slice step comes from positions (never from
    SliceThickness), RescaleSlope/Intercept are applied (HU for CT) and MONOCHROME1 (or
    PresentationLUTShape INVERSE) is inverted.

    A 2D image (one DICOM frame, a PNG) is ``(x, y)``: x along columns, y along rows, as stored.
    PNG, JPEG and TIFF carry no pixel size: 1 mm is assumed (``meta["spacing_known"]`` False)
    unless ``spacing`` gives it; see :mod:`medtransfer.io.raster`.

    Args:
        path: ``.nii``/``.nii.gz`` file, folder holding a DICOM series (searched recursively),
            one DICOM file (2D, or multi-frame), or a ``.png``/``.jpg``/``.jpeg``/``.tif``/
            ``.tiff`` image (also recognised by its first bytes when it has no suffix).
        series_uid: which series to load when the folder holds several.
        select: ``"largest"`` picks the series with most frames instead of raising when the
            folder holds several image series and no ``series_uid`` is given.
        dtype: float dtype of the result (default float32). For NIfTI, ``None`` keeps the stored
            type (useful for label maps).
        nonuniform: DICOM series with missing slices or varying spacing raise by default;
            ``"resample"`` interpolates them linearly onto a uniform grid (with a warning).
        gantry_tilt: ``"warn"`` (default) keeps a tilted acquisition as an exact sheared affine;
            ``"error"`` refuses it.
        on_unreadable: a file of the folder that may be a slice of the series but cannot be
            read (empty, truncated, damaged header) raises by default, since the volume could
            silently miss that slice; ``"warn"`` skips it with a
            :class:`~medtransfer.errors.DataWarning` that names it.
        voi: the VOI LUT or window of a single-frame grayscale DICOM image: ``"auto"``
            (default) applies it to projection radiographs (CR, DX, MG, IO, PX, RG), whose VOI
            is the rendering a reader sees and PNG exports bake in; ``"always"`` to any image
            that carries one; ``"none"`` never. ``meta["voi"]`` says what was done; see
            :mod:`medtransfer.io.dicom_voi`.
        spacing: pixel size in mm of a PNG/JPEG/TIFF image (one number, or ``(x, y)``); those
            formats carry none. Refused for DICOM and NIfTI, which carry their own.

    Raises:
        InputPathError: the path does not exist, or is neither a regular file nor a folder
            (a FIFO, a device).
        NiftiError, DicomError, RasterError: the file cannot be read or decoded; its header
            disagrees with its pixel data; impossible geometry or scaling (PixelSpacing 0,
            RescaleSlope NaN, WindowWidth 0...);
            declared sizes beyond the file or the memory budget; unreadable slices.
        SeriesError: several series and none chosen; missing/duplicate slices; mixed sizes or
            orientations; positions that do not form one stack.

    Example:
        >>> import medtransfer as mt, numpy as np, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = mt.io.write_dicom_series(np.full((8, 8, 3), 40.0), folder, affine=np.eye(4))
        >>> ct = mt.io.load(folder)
        >>> tuple(ct.shape), float(ct.max()), ct.meta["spacing"]
        ((8, 8, 3), 40.0, (1.0, 1.0, 1.0))
    """
    path = Path(path)
    if on_unreadable not in ("error", "warn"):
        raise ConfigError(
            f"on_unreadable={on_unreadable!r:.40} is not one of 'error' (default) or 'warn'."
        )
    if not path.exists():
        raise InputPathError(
            f"Not found: {path}. Pass a .nii/.nii.gz file, a DICOM file, or a folder of DICOM files."
        )
    is_file = path.is_file()
    if not is_file and not path.is_dir():
        raise InputPathError(
            f"{path} is not a regular file or a folder (a FIFO, a device or a socket), so it is "
            "not read. Pass a .nii/.nii.gz file, a DICOM file, or a folder of DICOM files."
        )
    check_voi_policy(voi)
    nifti = is_file and is_nifti_path(path)
    if is_file and not nifti and raster_format(path) is not None:
        return load_raster(path, spacing=spacing, dtype=dtype)
    if spacing is not None:
        raise ConfigError(
            f"spacing= is for PNG, JPEG and TIFF images, which carry no pixel size; {path} is "
            "DICOM or NIfTI and carries its own. Leave spacing out (or resample it afterwards)."
        )
    if nifti:
        return load_nifti(path, dtype=dtype)
    if dtype is None:
        dtype = np.float32
    if is_file:
        return load_dicom_file(
            path, dtype=dtype, nonuniform=nonuniform, gantry_tilt=gantry_tilt, voi=voi
        )
    scan = scan_folder(path)
    if scan.unreadable and not scan.series:
        names = name_files([u.path for u in scan.unreadable], path)
        raise DicomError(
            f"No readable DICOM file in {path}: {len(scan.unreadable)} file(s) look like DICOM "
            f"but cannot be read ({names}). {scan.unreadable[0].reason}"
        )
    uid, headers = choose_series(path, scan, series_uid, select)
    _handle_unreadable(path, scan, uid, headers, on_unreadable)
    only = headers[0]
    flat = only.position is None or only.orientation is None  # a radiograph: one 2D image
    if len(headers) == 1 and (only.frames > 1 or only.is_enhanced or flat):
        return load_dicom_file(
            only.path, dtype=dtype, nonuniform=nonuniform, gantry_tilt=gantry_tilt, voi=voi
        )
    return load_series_files(
        headers,
        name=uid,
        source=str(path),
        dtype=dtype,
        nonuniform=nonuniform,
        gantry_tilt=gantry_tilt,
    )
