"""Load one DICOM file: a 2D image, a legacy multi-frame stack, or an enhanced multi-frame volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.errors import DicomError
from medtransfer.io.dicom_geometry import (
    LPS_TO_RAS,
    FrameGeometry,
    NonUniformPolicy,
    TiltPolicy,
    check_geometry_values,
    plan_volume,
)
from medtransfer.io.dicom_guard import reading
from medtransfer.io.dicom_header import SliceHeader, read_header
from medtransfer.io.dicom_intensity import check_rescale, presentation_inverted, to_physical
from medtransfer.io.dicom_pixels import (
    check_pixel_header,
    decode_dataset_frames,
    read_stored_frames,
)
from medtransfer.io.dicom_voi import VoiPolicy, displayed_values
from medtransfer.io.dicom_volume import check_resample_budget, resample_slices, series_meta
from medtransfer.io.image import make_image

__all__ = ["load_dicom_file"]


def _first(sequence_owner: Any, sequence: str, keyword: str) -> Any:
    items = sequence_owner.get(sequence) if sequence_owner is not None else None
    if not items:
        return None
    return items[0].get(keyword)


def _functional(ds: Any, frame: int, sequence: str, keyword: str) -> Any:
    """A value from the per-frame functional group, falling back to the shared one."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    value = (
        _first(per_frame[frame], sequence, keyword)
        if per_frame and frame < len(per_frame)
        else None
    )
    if value is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        value = _first(shared[0], sequence, keyword) if shared else None
    return value


def _numbers(value: Any, count: int, field: str, label: str) -> tuple[float, ...]:
    """``count`` numbers of a functional-group value, or a DicomError naming the field."""
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise DicomError(
            f"{label}: {field} is not a list of numbers; the header is damaged."
        ) from err
    if len(numbers) != count:
        raise DicomError(f"{label}: {field} has {len(numbers)} values instead of {count}.")
    return numbers


def _enhanced_frames(ds: Any, header: SliceHeader) -> tuple[list[FrameGeometry], np.ndarray]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or ()
    if len(per_frame) < header.frames:  # checked before looping over a declared count
        raise DicomError(
            f"{header.path}: NumberOfFrames is {header.frames} but the per-frame functional "
            f"groups describe only {len(per_frame)} frame(s); the header is damaged. Re-export "
            "the file."
        )
    frames, rescale = [], []
    for f in range(header.frames):
        position = _functional(ds, f, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _functional(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = _functional(ds, f, "PixelMeasuresSequence", "PixelSpacing")
        if position is None or orientation is None:
            raise DicomError(
                f"{header.path}: frame {f + 1} of the enhanced multi-frame image has no plane "
                "position/orientation, so frames cannot be placed in space."
            )
        label = f"{header.path.name} frame {f + 1}"
        pixel_spacing = _numbers(spacing, 2, "PixelSpacing", label) if spacing else (1.0, 1.0)
        frames.append(
            FrameGeometry(
                label=label,
                position=_numbers(position, 3, "ImagePositionPatient", label),  # type: ignore[arg-type]
                orientation=_numbers(orientation, 6, "ImageOrientationPatient", label),
                pixel_spacing=pixel_spacing,  # type: ignore[arg-type]
                rows=header.rows,
                columns=header.columns,
                sop_uid=f"{header.sop_uid}#{f}",
            )
        )
        slope = _functional(ds, f, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _functional(ds, f, "PixelValueTransformationSequence", "RescaleIntercept")
        slope = _numbers([slope], 1, "RescaleSlope", label)[0] if slope not in (None, "") else None
        intercept = (
            _numbers([intercept], 1, "RescaleIntercept", label)[0]
            if intercept not in (None, "")
            else None
        )
        slope = header.rescale_slope if slope is None else slope
        intercept = header.rescale_intercept if intercept is None else intercept
        check_rescale(slope, intercept, source=f"{header.path} frame {f + 1}")
        rescale.append((slope, intercept))
    return frames, np.asarray(rescale, dtype=np.float64)


def _physical(stored: np.ndarray, header: SliceHeader, dtype: Any) -> np.ndarray:
    """Stored values of one file's frames to physical values (one rescale for all frames)."""
    volume = np.empty(stored.shape, dtype=dtype)
    return to_physical(
        stored,
        volume,
        slope=header.rescale_slope,
        intercept=header.rescale_intercept,
        monochrome1=presentation_inverted(header),
        bits_stored=header.bits_stored,
        signed=header.pixel_representation == 1,
    )


def _offset_frames(header: SliceHeader) -> list[FrameGeometry]:
    orientation = np.asarray(
        header.orientation if header.orientation else (1, 0, 0, 0, 1, 0), float
    )
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.asarray(header.position, dtype=np.float64)
    return [
        FrameGeometry(
            label=f"{header.path.name} frame {f + 1}",
            position=tuple(origin + offset * normal),
            orientation=tuple(orientation),
            pixel_spacing=header.pixel_spacing or (1.0, 1.0),
            rows=header.rows,
            columns=header.columns,
            sop_uid=f"{header.sop_uid}#{f}",
        )
        for f, offset in enumerate(header.frame_offsets or ())
    ]


def _slice_shape(header: SliceHeader) -> tuple[int, ...]:
    shape = (header.rows, header.columns)
    return (*shape, header.samples_per_pixel) if header.samples_per_pixel > 1 else shape


def _flat_affine(header: SliceHeader, step: float) -> np.ndarray:
    """Affine of a frame stack with no per-frame positions (X-ray, legacy multi-frame)."""
    row_spacing, col_spacing = header.pixel_spacing or (1.0, 1.0)
    if header.orientation is None or header.position is None:
        # No patient frame at all (projection radiography): axes as stored, scaled to mm.
        return np.diag([col_spacing, row_spacing, step, 1.0])
    orientation = np.asarray(header.orientation)
    normal = np.cross(orientation[:3], orientation[3:])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = orientation[:3] * col_spacing, orientation[3:] * row_spacing
    lps[:3, 2], lps[:3, 3] = normal * step, header.position
    return LPS_TO_RAS @ lps


def _flat_spacing_meta(header: SliceHeader) -> dict[str, Any]:
    """Where the pixel size of a file without per-frame geometry comes from, in words."""
    notes = []
    if header.position is None or header.orientation is None:
        notes.append(
            "no patient position/orientation: axes as stored (x = columns left to right, "
            "y = rows top to bottom), spacing in mm"
        )
    if header.spacing_field == "ImagerPixelSpacing":
        notes.append(
            "pixel spacing from ImagerPixelSpacing: measured at the detector plane, not corrected "
            "for geometric magnification (objects in the patient are smaller)"
        )
    elif not header.spacing_field:
        notes.append(
            "no PixelSpacing or ImagerPixelSpacing: 1 pixel = 1 mm assumed (spacing unknown)"
        )
    return {
        "spacing_known": bool(header.spacing_field),
        "spacing_source": header.spacing_field or "none",
        "geometry_notes": notes,
    }


def load_dicom_file(
    path: Path,
    *,
    dtype: Any = np.float32,
    nonuniform: NonUniformPolicy = "error",
    gantry_tilt: TiltPolicy = "warn",
    voi: VoiPolicy = "auto",
):
    """Load a single DICOM file as a MetaTensor.

    - one frame: a 2D image (columns, rows) whose 4x4 affine's third column is the slice normal
      times SliceThickness (1 mm when absent);
    - enhanced multi-frame (per-frame plane positions): a 3D volume ordered and checked exactly
      like a series of files;
    - legacy multi-frame without per-frame positions: frames stacked along the third axis with
      SpacingBetweenSlices (else SliceThickness, else 1 mm) as the step.
    Colour images keep RGB as a last axis (``meta["original_channel_dim"] == -1``). A
    single-frame grayscale image goes through its Modality LUT Sequence when it has one, and its
    VOI LUT or window under ``voi`` (see :mod:`medtransfer.io.dicom_voi`); MONOCHROME1 and
    PresentationLUTShape INVERSE invert it.

    Every failure names the file: a :class:`DicomError` for a damaged header, pixel data that
    disagrees with it, impossible geometry or scaling, or a declared size over the memory budget.
    """
    with reading(path):
        return _load_dicom_file(
            path, dtype=dtype, nonuniform=nonuniform, gantry_tilt=gantry_tilt, voi=voi
        )


def _load_dicom_file(
    path: Path, *, dtype: Any, nonuniform: NonUniformPolicy, gantry_tilt: TiltPolicy, voi: VoiPolicy
):
    import pydicom

    header = read_header(path, force=True)
    if header is None:
        raise DicomError(
            f"{path} is not a DICOM file (no 'DICM' marker and no DICOM header found). Pass a "
            ".dcm file, a folder of DICOM files, or a .nii/.nii.gz file."
        )
    if not header.has_pixels and not header.is_enhanced:
        raise DicomError(
            f"{path} has no image pixel data (modality {header.modality or 'unknown'}: e.g. a "
            "structure set, report or presentation state); load the image series it refers to."
        )
    itemsize = np.dtype(dtype).itemsize
    check_pixel_header(header, itemsize)  # sizes first: nothing allocated, no loop over frames
    meta = series_meta(header)
    meta["monochrome1_inverted"] = header.photometric == "MONOCHROME1"
    meta["inverted"] = presentation_inverted(header)
    if header.is_enhanced:
        ds = pydicom.dcmread(path)
        frames, rescale = _enhanced_frames(ds, header)
        stored = decode_dataset_frames(ds, path)
        geometry = plan_volume(
            frames, name=header.path.name, nonuniform=nonuniform, gantry_tilt=gantry_tilt
        )
        check_resample_budget(geometry, stored.shape[1:], itemsize, source=path)
        volume = np.empty((len(geometry.order), *stored.shape[1:]), dtype=dtype)
        for k, f in enumerate(geometry.order):
            to_physical(
                stored[f],
                volume[k],
                slope=rescale[f, 0],
                intercept=rescale[f, 1],
                monochrome1=presentation_inverted(header),
                bits_stored=header.bits_stored,
                signed=header.pixel_representation == 1,
            )
        if geometry.resample_to is not None:
            volume = resample_slices(volume, geometry.slice_positions, geometry.resample_to)
        affine = geometry.affine
        meta["geometry_notes"] = list(geometry.notes)
    elif header.frame_offsets is not None and header.frames > 1 and header.position is not None:
        # RT dose grids: frame k sits at ImagePositionPatient + offset[k] along the normal.
        check_rescale(header.rescale_slope, header.rescale_intercept, source=path)
        frames = _offset_frames(header)
        geometry = plan_volume(
            frames, name=header.path.name, nonuniform=nonuniform, gantry_tilt=gantry_tilt
        )
        check_resample_budget(geometry, _slice_shape(header), itemsize, source=path)
        volume = _physical(read_stored_frames(header)[geometry.order], header, dtype)
        if geometry.resample_to is not None:
            volume = resample_slices(volume, geometry.slice_positions, geometry.resample_to)
        affine = geometry.affine
    else:
        check_rescale(header.rescale_slope, header.rescale_intercept, source=path)
        step_field = "SpacingBetweenSlices" if header.spacing_between_slices else "SliceThickness"
        step = header.spacing_between_slices or header.slice_thickness or 1.0
        check_geometry_values(
            str(path),
            position=header.position,
            orientation=header.orientation,
            pixel_spacing=header.pixel_spacing,
            slice_step=step,
            step_field=step_field,
        )
        stored = read_stored_frames(header)
        shown = None
        if stored.shape[0] == 1 and header.samples_per_pixel == 1:
            shown, display = displayed_values(stored[0], header, dtype=dtype, voi=voi)
            meta.update(display)
        volume = _physical(stored, header, dtype) if shown is None else shown[None]
        affine = _flat_affine(header, abs(step))
        meta.update(_flat_spacing_meta(header))
    colour = volume.ndim == 4
    if volume.shape[0] == 1:  # a single frame is a 2D image
        volume = volume[0]
        axes = (1, 0, 2) if colour else (1, 0)
    else:
        axes = (2, 1, 0, 3) if colour else (2, 1, 0)
    return make_image(
        volume.transpose(axes), affine, source=str(path), channel_last=colour, extra=meta
    )
