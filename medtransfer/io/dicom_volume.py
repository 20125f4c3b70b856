"""Assemble one DICOM series (single-frame files) into a volume MetaTensor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from medtransfer.errors import DicomError, SeriesError
from medtransfer.io.dicom_geometry import (
    FrameGeometry,
    NonUniformPolicy,
    TiltPolicy,
    VolumeGeometry,
    plan_volume,
)
from medtransfer.io.dicom_header import SliceHeader
from medtransfer.io.dicom_intensity import check_rescale, presentation_inverted, to_physical
from medtransfer.io.dicom_pixels import check_pixel_header, read_stored_frames
from medtransfer.io.image import make_image
from medtransfer.io.limits import check_memory_budget

__all__ = [
    "check_resample_budget",
    "frame_geometry",
    "load_series_files",
    "series_meta",
    "resample_slices",
]


def series_meta(header: SliceHeader) -> dict[str, Any]:
    """Non-PHI metadata copied into every loaded DICOM image."""
    return {
        "format": "dicom",
        "modality": header.modality,
        "series_uid": header.series_uid,
        "transfer_syntax": header.transfer_syntax,
    }


def resample_slices(volume: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0 from slice ``positions`` to ``targets`` (both in mm)."""
    upper = np.clip(np.searchsorted(positions, targets, side="right"), 1, len(positions) - 1)
    lower = upper - 1
    span = positions[upper] - positions[lower]
    weight = ((targets - positions[lower]) / span).astype(volume.dtype)
    shape = (-1,) + (1,) * (volume.ndim - 1)
    return volume[lower] * (1 - weight).reshape(shape) + volume[upper] * weight.reshape(shape)


def check_resample_budget(
    geometry: VolumeGeometry, slice_shape: tuple[int, ...], itemsize: int, *, source: object
) -> None:
    """Refuse to resample onto more slices than the memory budget allows (positions far apart
    in a damaged header would ask for millions of slices)."""
    if geometry.resample_to is not None:
        check_memory_budget(
            len(geometry.resample_to) * int(np.prod(slice_shape)) * itemsize,
            path=source,
            what=f"resampling onto {len(geometry.resample_to)} uniformly spaced slices",
            error=DicomError,
        )


def frame_geometry(header: SliceHeader) -> FrameGeometry:
    """Where the single frame of ``header`` sits (for :func:`plan_volume`)."""
    return FrameGeometry(
        label=header.path.name,
        position=header.position,  # type: ignore[arg-type]
        orientation=header.orientation,  # type: ignore[arg-type]
        pixel_spacing=header.pixel_spacing or (1.0, 1.0),
        rows=header.rows,
        columns=header.columns,
        sop_uid=header.sop_uid,
    )


def load_series_files(
    headers: list[SliceHeader],
    *,
    name: str,
    source: str,
    dtype: Any = np.float32,
    nonuniform: NonUniformPolicy = "error",
    gantry_tilt: TiltPolicy = "warn",
    workers: int = 4,
):
    """Read the single-frame files of one series into a (columns, rows, slices) MetaTensor.

    Args:
        headers: parsed headers of every file of the series.
        name: how messages identify the series (its UID; never PHI).
        source: folder reported in ``meta["filename_or_obj"]``.
        dtype: float dtype of the result (physical values: HU for CT).
        nonuniform, gantry_tilt: see :func:`medtransfer.io.dicom_geometry.plan_volume`.
        workers: threads reading pixel data (file reads release the GIL).
    """
    lacking = [h.path.name for h in headers if h.position is None or h.orientation is None]
    if lacking:
        raise SeriesError(
            f"series {name}: {len(lacking)} of {len(headers)} files (e.g. {lacking[0]}) have no "
            "ImagePositionPatient/ImageOrientationPatient, so slices cannot be ordered safely. "
            "Load such files one at a time with mt.io.load(file)."
        )
    multi = [h.path.name for h in headers if h.frames > 1 or h.is_enhanced]
    if multi and len(headers) > 1:
        raise SeriesError(
            f"series {name} mixes {len(multi)} multi-frame file(s) (e.g. {multi[0]}) with other files; "
            "load each multi-frame file on its own with mt.io.load(file)."
        )
    kinds = {h.samples_per_pixel for h in headers}
    if len(kinds) > 1:
        raise SeriesError(
            f"series {name} mixes {sorted(kinds)} samples per pixel (grey and colour files); "
            "load the files of one kind."
        )
    itemsize = np.dtype(dtype).itemsize
    for header in headers:  # every header is checked before anything is allocated
        check_pixel_header(header, itemsize)
        check_rescale(header.rescale_slope, header.rescale_intercept, source=header.path)
    thickness = abs(headers[0].slice_thickness or 1.0)  # used for one slice; NaN is refused
    geometry = plan_volume(
        [frame_geometry(h) for h in headers],
        name=name,
        nonuniform=nonuniform,
        gantry_tilt=gantry_tilt,
        single_slice_thickness=thickness,
    )
    ordered = [headers[i] for i in geometry.order]
    first = ordered[0]
    samples = first.samples_per_pixel
    shape = (len(ordered), first.rows, first.columns) + ((samples,) if samples > 1 else ())
    check_memory_budget(
        int(np.prod(shape)) * itemsize,
        path=source,
        what=f"series {name} ({len(ordered)} slices of {first.rows} x {first.columns})",
        error=DicomError,
    )
    check_resample_budget(geometry, shape[1:], itemsize, source=source)
    volume = np.empty(shape, dtype=dtype)

    def fill(k: int) -> None:
        header = ordered[k]
        stored = read_stored_frames(header)[0]
        to_physical(
            stored,
            volume[k],
            slope=header.rescale_slope,
            intercept=header.rescale_intercept,
            monochrome1=presentation_inverted(header),
            bits_stored=header.bits_stored,
            signed=header.pixel_representation == 1,
        )

    if workers > 1 and len(ordered) > 8:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, range(len(ordered))))
    else:
        for k in range(len(ordered)):
            fill(k)
    if geometry.resample_to is not None:
        volume = resample_slices(volume, geometry.slice_positions, geometry.resample_to)
    axes = (2, 1, 0, 3) if samples > 1 else (2, 1, 0)
    meta = series_meta(first)
    meta.update(
        {
            "n_files": len(headers),
            "geometry_notes": list(geometry.notes),
            "gantry_tilt_degrees": geometry.tilt_degrees,
            "monochrome1_inverted": first.photometric == "MONOCHROME1",
            "inverted": presentation_inverted(first),
        }
    )
    return make_image(
        volume.transpose(axes), geometry.affine, source=source, channel_last=samples > 1, extra=meta
    )
