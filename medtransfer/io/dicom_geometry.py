"""Slice ordering and volume geometry of a DICOM series, with the checks that keep it honest.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (never by file
name or InstanceNumber) and the slice step comes from positions (never from SliceThickness).
Everything a volume cannot represent faithfully is detected: mixed orientations or sizes,
duplicate positions, missing slices, non-uniform spacing, positions off a line, gantry tilt.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from medtransfer.errors import DicomError, GeometryWarning, SeriesError

__all__ = ["FrameGeometry", "VolumeGeometry", "check_geometry_values", "plan_volume", "LPS_TO_RAS"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_TOLERANCE = 1e-3  # direction cosines are written with limited decimals
TILT_TOLERANCE_DEG = 0.05

NonUniformPolicy = Literal["error", "resample"]
TiltPolicy = Literal["warn", "error"]


@dataclass(frozen=True)
class FrameGeometry:
    """Where one 2D frame sits in the patient (LPS mm) and how big it is."""

    label: str  # file name (and frame number) for messages; never PHI
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) in mm
    rows: int
    columns: int
    sop_uid: str = ""


@dataclass
class VolumeGeometry:
    """Result of :func:`plan_volume`: the frame order and the voxel-to-RAS+ affine."""

    order: list[int]
    affine: np.ndarray
    slice_positions: np.ndarray  # projection on the normal of each ordered frame (mm)
    resample_to: np.ndarray | None = None  # target projections when spacing was made uniform
    dropped_duplicates: list[int] = field(default_factory=list)
    tilt_degrees: float = 0.0
    notes: list[str] = field(default_factory=list)


def _finite(values: Sequence[float] | None) -> bool:
    return values is None or all(math.isfinite(v) for v in values)


def _orthonormal(orientation: Sequence[float], tolerance: float = 0.01) -> bool:
    row, column = orientation[:3], orientation[3:]
    dot = sum(r * c for r, c in zip(row, column))
    return (
        abs(math.hypot(*row) - 1) <= tolerance
        and abs(math.hypot(*column) - 1) <= tolerance
        and abs(dot) <= tolerance
    )


def check_geometry_values(
    label: str,
    *,
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = None,
    pixel_spacing: Sequence[float] | None = None,
    slice_step: float | None = None,
    step_field: str = "SliceThickness",
) -> None:
    """Refuse geometry no real image has: NaN/inf anywhere, a zero or negative pixel spacing,
    ImageOrientationPatient that is not two orthogonal unit vectors (within 1%, as written with
    few decimals). ``None`` means absent (not checked).

    Raises:
        DicomError: naming ``label`` (the file) and the field; geometry values are not PHI,
            so they are shown.

    Example:
        >>> check_geometry_values("a.dcm", pixel_spacing=(0.7, 0.7))
        >>> try:
        ...     check_geometry_values("a.dcm", pixel_spacing=(0.0, 0.7))
        ... except DicomError as err:
        ...     print(str(err)[:40])
        a.dcm: PixelSpacing (0.0, 0.7) is not tw
    """
    problems = []
    if not _finite(position):
        problems.append(f"ImagePositionPatient {tuple(position)} is not three finite numbers")
    if orientation is not None:
        if not _finite(orientation):
            problems.append(
                f"ImageOrientationPatient {tuple(orientation)} is not six finite numbers"
            )
        elif min(math.hypot(*orientation[:3]), math.hypot(*orientation[3:])) < 1e-3:
            problems.append(
                f"ImageOrientationPatient {tuple(orientation)} has a zero-length direction"
            )
        elif not _orthonormal(orientation):
            problems.append(
                f"ImageOrientationPatient {tuple(orientation)} is not two orthogonal unit vectors"
            )
    if pixel_spacing is not None and not (_finite(pixel_spacing) and min(pixel_spacing) > 0):
        problems.append(f"PixelSpacing {tuple(pixel_spacing)} is not two positive numbers")
    if slice_step is not None and not math.isfinite(slice_step):
        problems.append(f"{step_field} {slice_step} is not a finite number")
    if problems:
        raise DicomError(
            f"{label}: {'; '.join(problems)}. No real image has this geometry: the header is "
            "damaged. Re-export the file, or remove it from the series."
        )


def _series_label(name: str | None) -> str:
    return f"series {name}" if name else "the series"


def _check_uniform_frames(frames: list[FrameGeometry], name: str | None) -> None:
    sizes = Counter((f.rows, f.columns) for f in frames)
    if len(sizes) > 1:
        listing = ", ".join(f"{c} frames of {r}x{k}" for (r, k), c in sizes.most_common())
        raise SeriesError(
            f"{_series_label(name)} mixes image sizes ({listing}); a volume needs one size. "
            "It probably holds localizers or several reconstructions: load one of them by "
            "selecting its files, or re-export the series."
        )
    reference = np.asarray(frames[0].orientation)
    odd = [
        f.label
        for f in frames
        if np.abs(np.asarray(f.orientation) - reference).max() > ORIENTATION_TOLERANCE
    ]
    if odd:
        raise SeriesError(
            f"{_series_label(name)} mixes slice orientations: {len(odd)} of {len(frames)} frames "
            f"(e.g. {odd[0]}) differ from {frames[0].label}. It probably holds localizer or "
            "reformatted images; remove them or load the frames of one orientation."
        )
    spacings = {tuple(np.round(f.pixel_spacing, 4)) for f in frames}
    if len(spacings) > 1:
        raise SeriesError(
            f"{_series_label(name)} mixes pixel spacings {sorted(spacings)}; one volume needs one "
            "in-plane spacing. Load the frames of one reconstruction."
        )


def _drop_exact_duplicates(frames, projections, order, tolerance, name):
    """Same position twice: identical SOP instances are dropped, different ones are an error."""
    keep, dropped = [order[0]], []
    for idx in order[1:]:
        prev = keep[-1]
        if abs(projections[idx] - projections[prev]) > tolerance:
            keep.append(idx)
            continue
        if frames[idx].sop_uid and frames[idx].sop_uid == frames[prev].sop_uid:
            dropped.append(idx)
            continue
        n_positions = len({round(float(p) / max(tolerance, 1e-6)) for p in projections})
        raise SeriesError(
            f"{_series_label(name)}: {frames[idx].label} and {frames[prev].label} share the position "
            f"{projections[idx]:.3f} mm along the slice normal ({len(frames)} frames at "
            f"{n_positions} distinct positions). The series holds several volumes (echoes, phases, "
            "time points or repeated acquisitions); split it (e.g. by AcquisitionNumber, EchoNumbers "
            "or TemporalPositionIdentifier) and load one volume."
        )
    return keep, dropped


def plan_volume(
    frames: list[FrameGeometry],
    *,
    name: str | None = None,
    nonuniform: NonUniformPolicy = "error",
    gantry_tilt: TiltPolicy = "warn",
    spacing_tolerance: float = 0.01,
    single_slice_thickness: float = 1.0,
) -> VolumeGeometry:
    """Order ``frames`` along the slice normal, check them, and compute the volume's affine.

    Voxel (i, j, k) is column i, row j of the k-th ordered frame. The affine's first column is
    the row direction times the column spacing, the second the column direction times the row
    spacing, the third the step between consecutive positions (it carries gantry tilt as shear),
    and the origin the first position; it is converted from DICOM's LPS to RAS+.

    Args:
        frames: one entry per 2D frame (file or frame of a multi-frame file).
        name: series identifier used in messages (a UID or case id, never PHI).
        nonuniform: "error" (default) refuses missing slices or varying spacing; "resample"
            keeps the frames and returns ``resample_to``, the uniform positions to interpolate to.
        gantry_tilt: "warn" (default) keeps a tilted stack as a sheared affine (exact geometry)
            with a :class:`GeometryWarning`; "error" refuses it.
        spacing_tolerance: relative tolerance on the slice step (default 1%).
        single_slice_thickness: length of the third axis when there is one frame (no step to
            measure): the caller passes SliceThickness, or 1 mm when it is absent.

    Example:
        >>> frames = [FrameGeometry(f"s{k}", (0.0, 0.0, 2.0 * k), (1, 0, 0, 0, 1, 0), (0.5, 0.5), 4, 4)
        ...           for k in (2, 0, 1)]
        >>> geom = plan_volume(frames)
        >>> geom.order, geom.affine.diagonal().tolist()
        ([1, 2, 0], [-0.5, -0.5, 2.0, 1.0])
    """
    if not frames:
        raise SeriesError(f"{_series_label(name)} has no image frames.")
    for frame in frames:
        check_geometry_values(
            frame.label,
            position=frame.position,
            orientation=frame.orientation,
            pixel_spacing=frame.pixel_spacing,
        )
    _check_uniform_frames(frames, name)
    orientation = np.asarray(frames[0].orientation, dtype=np.float64)
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-2):
        raise SeriesError(
            f"{_series_label(name)}: ImageOrientationPatient {tuple(orientation)} of {frames[0].label} "
            "is not two orthogonal unit vectors; the header is corrupt."
        )
    normal /= np.linalg.norm(normal)
    positions = np.asarray([f.position for f in frames], dtype=np.float64)
    projections = positions @ normal
    order = sorted(range(len(frames)), key=lambda i: (projections[i], frames[i].label))
    row_spacing, col_spacing = frames[0].pixel_spacing
    notes: list[str] = []

    if len(frames) == 1:
        check_geometry_values(frames[0].label, slice_step=single_slice_thickness)
        thickness_step = normal * single_slice_thickness
        affine_lps = np.eye(4)
        affine_lps[:3, 0], affine_lps[:3, 1] = row_cos * col_spacing, col_cos * row_spacing
        affine_lps[:3, 2], affine_lps[:3, 3] = thickness_step, positions[0]
        return VolumeGeometry(order, LPS_TO_RAS @ affine_lps, projections[order], notes=notes)

    steps = np.diff(projections[order])
    median = float(np.median(steps[steps > 1e-6])) if np.any(steps > 1e-6) else 0.0
    tolerance = max(1e-3, spacing_tolerance * median)
    order, dropped = _drop_exact_duplicates(frames, projections, order, tolerance, name)
    if dropped:
        notes.append(f"dropped {len(dropped)} duplicated instance(s)")
    if len(order) == 1:
        raise SeriesError(f"{_series_label(name)}: all frames are copies of one instance.")

    ordered_proj = projections[order]
    steps = np.diff(ordered_proj)
    median = float(np.median(steps))
    tolerance = max(1e-3, spacing_tolerance * median)
    first, last = positions[order[0]], positions[order[-1]]
    direction = (last - first) / np.linalg.norm(last - first)
    offsets = positions[order] - first
    off_line = np.linalg.norm(offsets - np.outer(offsets @ direction, direction), axis=1)
    if off_line.max() > max(tolerance, 0.01):
        worst = order[int(off_line.argmax())]
        raise SeriesError(
            f"{_series_label(name)}: slice positions do not lie on one line ({frames[worst].label} is "
            f"{off_line.max():.2f} mm off the line through the first and last slices). The folder "
            "probably mixes stacks; load each stack separately."
        )

    resample_to = None
    irregular = np.abs(steps - median) > tolerance
    if irregular.any():
        ratios = steps / median
        gaps = [i for i in np.flatnonzero(irregular) if ratios[i] > 1.5]
        if gaps:
            i = int(gaps[0])
            problem = (
                f"missing slices: a gap of {steps[i]:.3f} mm between {frames[order[i]].label} and "
                f"{frames[order[i + 1]].label} where the spacing is {median:.3f} mm "
                f"(about {round(ratios[i]) - 1} slice(s) missing; {len(gaps)} gap(s) in all)"
            )
        else:
            problem = f"non-uniform slice spacing ({steps.min():.3f} to {steps.max():.3f} mm)"
        if nonuniform == "error":
            raise SeriesError(
                f"{_series_label(name)} has {problem}. Re-export the complete series, or pass "
                "nonuniform='resample' to interpolate linearly onto a uniform grid."
            )
        count = int(round((ordered_proj[-1] - ordered_proj[0]) / median)) + 1
        resample_to = np.linspace(ordered_proj[0], ordered_proj[-1], count)
        notes.append(f"resampled along the slice axis because of {problem}")
        warnings.warn(
            f"{_series_label(name)} has {problem}; resampled linearly to {count} slices.",
            GeometryWarning,
            stacklevel=3,
        )

    n_out = len(order) if resample_to is None else len(resample_to)
    slice_step = (last - first) / (n_out - 1)
    cos_tilt = abs(float(direction @ normal))
    tilt = float(np.degrees(np.arccos(min(1.0, cos_tilt))))
    if tilt > TILT_TOLERANCE_DEG:
        message = (
            f"{_series_label(name)} is acquired with gantry tilt ({tilt:.2f} degrees): slices are "
            "shifted along the table. The affine keeps the exact geometry as a shear"
        )
        if gantry_tilt == "error":
            raise SeriesError(message + "; pass gantry_tilt='warn' to accept it.")
        warnings.warn(
            message + "; resample before models that assume orthogonal axes.",
            GeometryWarning,
            stacklevel=3,
        )
        notes.append(f"gantry tilt {tilt:.2f} degrees kept as shear")

    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_cos * col_spacing
    affine_lps[:3, 1] = col_cos * row_spacing
    affine_lps[:3, 2] = slice_step
    affine_lps[:3, 3] = first
    return VolumeGeometry(
        order=order,
        affine=LPS_TO_RAS @ affine_lps,
        slice_positions=ordered_proj,
        resample_to=resample_to,
        dropped_duplicates=dropped,
        tilt_degrees=tilt if tilt > TILT_TOLERANCE_DEG else 0.0,
        notes=notes,
    )
