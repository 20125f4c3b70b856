"""Read what a DICOM file says about itself, without reading its pixels.

One parse per file (``defer_size`` skips the pixel bytes but records where they are), so the
same header serves series discovery, geometry checks and the fast pixel read. Only regular
files are opened, and every failure of the parser becomes a :class:`DicomError` naming the file
(see :mod:`medtransfer.io.dicom_guard`).

Example:
    >>> import numpy as np, tempfile
    >>> from medtransfer.io.dicom_write import write_dicom_series
    >>> files = write_dicom_series(np.zeros((8, 6, 2)), tempfile.mkdtemp(), affine=np.eye(4))
    >>> header = read_header(files[0])
    >>> header.rows, header.columns, header.pixel_length
    (6, 8, 96)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtransfer.errors import DicomError, MedTransferError
from medtransfer.io.dicom_guard import (
    FATAL_EXCEPTIONS,
    UNDEFINED_LENGTH,
    UnreadableFileError,
    describe_exception,
    looks_like_dicom,
    open_regular,
    overrun,
    uid_in_file,
    unreadable,
    well_formed_uid,
)

__all__ = ["SliceHeader", "file_size", "is_probably_dicom", "read_header"]

_PIXEL_DATA = 0x7FE00010
_FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)
_DEFLATED = "1.2.840.10008.1.2.1.99"
_SKIP_NAMES = {"DICOMDIR"}


@dataclass(frozen=True)
class SliceHeader:
    """The header fields medtransfer needs from one DICOM file (no PHI is kept)."""

    path: Path
    sop_uid: str
    series_uid: str
    study_uid: str
    modality: str
    description: str
    series_number: int | None
    instance_number: int | None
    rows: int
    columns: int
    frames: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    rescale_slope: float
    rescale_intercept: float
    photometric: str
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    transfer_syntax: str
    pixel_offset: int | None
    pixel_length: int | None
    study_date: str
    acquisition_number: int | None
    echo_number: int | None
    is_enhanced: bool
    frame_offsets: tuple[float, ...] | None = None  # GridFrameOffsetVector (RT dose grids)
    planar_configuration: int = 0  # colour data: 0 = RGBRGB..., 1 = RR..GG..BB
    file_size: int = 0  # bytes, from the fstat of the header read (0: unknown)
    presentation_lut_shape: str = ""  # "INVERSE" inverts like MONOCHROME1 (radiographs)
    spacing_field: str = ""  # "PixelSpacing", "ImagerPixelSpacing" (detector plane) or ""

    @property
    def has_pixels(self) -> bool:
        return (
            self.rows > 0
            and self.columns > 0
            and (self.pixel_offset is not None or self.is_enhanced)
        )


def is_probably_dicom(path: Path) -> bool:
    """True when ``path`` is a regular file with the 'DICM' marker at byte 128 (Part 10 file)."""
    try:
        handle, _ = open_regular(path)
    except (OSError, DicomError):
        return False
    with handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


# The header fields we need, with the VR each must have. Reading them straight from pydicom's
# raw elements is ~3x faster than Dataset attribute access, which dominates a series scan.
_TAGS: dict[str, tuple[int, str]] = {
    "SOPInstanceUID": (0x00080018, "UI"),
    "SOPClassUID": (0x00080016, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "Modality": (0x00080060, "CS"),
    "SeriesNumber": (0x00200011, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "EchoNumbers": (0x00180086, "IS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "SamplesPerPixel": (0x00280002, "US"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "PlanarConfiguration": (0x00280006, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "PixelSpacing": (0x00280030, "DS"),
    "ImagerPixelSpacing": (0x00181164, "DS"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "DoseGridScaling": (0x3004000E, "DS"),
    "GridFrameOffsetVector": (0x3004000C, "DS"),
    "StudyDate": (0x00080020, "DA"),
    "PresentationLUTShape": (0x20500020, "CS"),
}
_MISSING = object()


def _fast_value(ds: Any, keyword: str) -> Any:
    """The value of ``keyword`` as str / list[str] / int, or ``_MISSING``; pydicom as fallback."""
    tag, vr = _TAGS[keyword]
    element = ds._dict.get(tag)
    if element is None:
        return _MISSING
    raw = getattr(element, "value", None)
    if isinstance(raw, bytes) and getattr(element, "VR", vr) in (vr, None):
        if vr == "US":
            if len(raw) >= 2:
                return int.from_bytes(raw[:2], "little" if element.is_little_endian else "big")
        else:
            text = raw.decode("ascii", "replace").strip(" \x00")
            return text.split("\\") if "\\" in text else text
    value = ds.get(keyword)  # already converted, unusual VR, or odd bytes: let pydicom decide
    return _MISSING if value is None else value


def _text(ds: Any, keyword: str) -> str:
    value = _fast_value(ds, keyword)
    if value is _MISSING:
        return ""
    return "\\".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _float(ds: Any, keyword: str, default: float | None = None) -> float | None:
    """The first value of ``keyword``; ``default`` when absent, NaN when present but not a number
    (so the checks at load time report the field instead of silently using a default)."""
    value = _fast_value(ds, keyword)
    if isinstance(value, list | tuple) or getattr(value, "VM", 1) > 1:
        value = value[0] if len(value) else _MISSING
    if value is _MISSING or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _int(
    ds: Any, keyword: str, default: int | None = None, invalid: int | None = None
) -> int | None:
    """The first value of ``keyword``: ``default`` when absent, ``invalid`` (default:
    ``default``) when present but not a number."""
    value = _fast_value(ds, keyword)
    if isinstance(value, list | tuple):
        value = value[0] if len(value) else _MISSING
    if value is _MISSING or value == "":
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default if invalid is None else invalid


def _floats(ds: Any, keyword: str, count: int, *, strict: bool = True) -> tuple[float, ...] | None:
    """``count`` numbers, or None when absent. A value that is present but damaged (wrong count,
    not numbers) gives NaNs with ``strict`` (reported by the checks at load time), else None."""
    value = _fast_value(ds, keyword)
    if value is _MISSING or value == "":
        return None
    values = (
        value
        if isinstance(value, list | tuple)
        or hasattr(value, "__len__")
        and not isinstance(value, str)
        else [value]
    )
    damaged = (float("nan"),) * count if strict else None
    if len(values) != count:
        return damaged
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return damaged


def _pixel_location(ds: Any) -> tuple[int | None, int | None]:
    raw = ds._dict.get(_PIXEL_DATA)  # a RawDataElement when deferred: value_tell = file offset
    if raw is None:
        return None, None
    offset = getattr(raw, "value_tell", None)
    length = getattr(raw, "length", None)
    if length == UNDEFINED_LENGTH:  # encapsulated (compressed) frames
        return offset, None
    return offset, length


def _is_image_storage(sop_class: str) -> bool:
    from pydicom.uid import UID

    return "Image Storage" in UID(sop_class).name


def read_header(path: Path, *, force: bool = False) -> SliceHeader | None:
    """Parse the header of ``path``.

    Returns ``None`` when the file is not DICOM: no 'DICM' marker and, with ``force`` (the name
    looks like DICOM), no SOP/Series UID and no DICOM-like first bytes either.

    Raises:
        UnreadableFileError: (a :class:`DicomError`) the file claims to be DICOM, or is named
            like DICOM with DICOM-like first bytes or none at all, but cannot be parsed:
            truncated, damaged, empty, or not a regular file.
    """
    import pydicom

    path = Path(path)
    if path.name in _SKIP_NAMES:
        return None
    try:
        handle, size = open_regular(path)
    except OSError as err:
        if not force:
            return None
        raise UnreadableFileError(
            f"{path} cannot be opened ({describe_exception(err)}). Check that it exists and "
            "that you may read it.",
            claims_dicom=False,
        ) from err
    with handle:
        try:
            head = handle.read(134)
        except OSError as err:
            raise unreadable(path, f"cannot be read ({describe_exception(err)})") from err
        marked = head[128:132] == b"DICM"
        if not marked and not force:
            return None
        if size == 0:
            raise unreadable(path, "is empty (0 bytes)", claims_dicom=False)
        try:
            handle.seek(0)
            ds = pydicom.dcmread(handle, defer_size=1024, force=not marked)
            return _header(ds, path, size, marked=marked, head=head)
        except MedTransferError:
            raise
        except BaseException as err:
            if isinstance(err, FATAL_EXCEPTIONS):
                raise
            if not marked and not looks_like_dicom(head):
                return None
            raise unreadable(
                path,
                f"has a header that cannot be parsed ({describe_exception(err)})",
                claims_dicom=marked,
            ) from err


def _header(ds: Any, path: Path, size: int, *, marked: bool, head: bytes) -> SliceHeader | None:
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not syntax:
        syntax = "1.2.840.10008.1.2"  # no file meta: implicit VR little endian by default
    # Offsets are read before any value is converted (conversion drops them). Those of a
    # deflated data set are in the inflated stream, not in the file.
    end = None if syntax == _DEFLATED else overrun(ds, size)
    uid_complete = uid_in_file(ds, size)
    series_uid = _text(ds, "SeriesInstanceUID")
    sop_class = _text(ds, "SOPClassUID")
    if not (series_uid or sop_class):
        if not marked and not looks_like_dicom(head):
            return None
        raise unreadable(
            path,
            "has a header that stops early (no SOPClassUID or SeriesInstanceUID)",
            claims_dicom=marked,
        )
    trusted_uid = series_uid if uid_complete and well_formed_uid(series_uid) else ""
    if end is not None:
        raise unreadable(
            path,
            f"ends at byte {size} but its header describes data up to byte {end}",
            series_uid=trusted_uid,
        )
    offset, length = _pixel_location(ds)
    pixels = offset is not None or any(tag in ds._dict for tag in _FLOAT_PIXEL_DATA)
    if not pixels and sop_class and _is_image_storage(sop_class):
        raise unreadable(
            path,
            "is an image (its SOP class is an Image Storage) but has no pixel data",
            series_uid=trusted_uid,
        )
    rows, columns = _int(ds, "Rows", 0) or 0, _int(ds, "Columns", 0) or 0
    if pixels and not (rows and columns):
        raise unreadable(path, "has pixel data but no Rows or Columns", series_uid=trusted_uid)
    slope = _float(ds, "RescaleSlope")
    if slope is None:
        slope = _float(ds, "DoseGridScaling", 1.0)
    # 0 is read as 1 frame; negative or not a number (-1) is refused before pixels are read
    frames = _int(ds, "NumberOfFrames", 1, invalid=-1) or 1
    pixel_spacing = _floats(ds, "PixelSpacing", 2)
    imager_spacing = None if pixel_spacing else _floats(ds, "ImagerPixelSpacing", 2)
    spacing_field = (
        "PixelSpacing" if pixel_spacing else "ImagerPixelSpacing" if imager_spacing else ""
    )
    return SliceHeader(
        path=path,
        sop_uid=_text(ds, "SOPInstanceUID"),
        series_uid=series_uid,
        study_uid=_text(ds, "StudyInstanceUID"),
        modality=_text(ds, "Modality"),
        description=str(ds.get("SeriesDescription", "")),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        rows=rows,
        columns=columns,
        frames=frames,
        position=_floats(ds, "ImagePositionPatient", 3),
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        pixel_spacing=pixel_spacing or imager_spacing,
        slice_thickness=_float(ds, "SliceThickness"),
        spacing_between_slices=_float(ds, "SpacingBetweenSlices"),
        rescale_slope=1.0 if slope is None else slope,
        rescale_intercept=_float(ds, "RescaleIntercept", 0.0),  # type: ignore[arg-type]
        photometric=_text(ds, "PhotometricInterpretation").strip() or "MONOCHROME2",
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) or 1,
        bits_allocated=_int(ds, "BitsAllocated", 16) or 16,
        bits_stored=_int(ds, "BitsStored", 0) or _int(ds, "BitsAllocated", 16) or 16,
        pixel_representation=_int(ds, "PixelRepresentation", 0) or 0,
        transfer_syntax=syntax,
        pixel_offset=offset,
        pixel_length=length,
        study_date=_text(ds, "StudyDate"),
        acquisition_number=_int(ds, "AcquisitionNumber"),
        echo_number=_int(ds, "EchoNumbers"),
        is_enhanced=0x52009230 in ds._dict,  # PerFrameFunctionalGroupsSequence
        frame_offsets=_floats(ds, "GridFrameOffsetVector", max(frames, 1), strict=False),
        planar_configuration=_int(ds, "PlanarConfiguration", 0) or 0,
        file_size=size,
        presentation_lut_shape=_text(ds, "PresentationLUTShape").strip().upper(),
        spacing_field=spacing_field,
    )


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes (0 when it cannot be read)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
