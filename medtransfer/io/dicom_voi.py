"""What a reader sees on a radiograph: Modality LUT, VOI LUT or window, then Presentation LUT shape.

DICOM maps stored values to displayed ones in three steps (PS3.4 N.2): the Modality LUT
(RescaleSlope/Intercept, or a Modality LUT Sequence), the VOI LUT (a VOI LUT Sequence, or
WindowCenter/WindowWidth with VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID), and the
Presentation LUT (MONOCHROME1, or PresentationLUTShape INVERSE: low values white).

For CT and MR the first step gives physical values (HU) and windows are a display choice that
the CT preset makes itself, so ``mt.io.load`` stops there. A projection radiograph (CR, DX, MG,
IO, PX, RG) "for presentation" has no physical scale, and its VOI LUT is the vendor's rendering
that a radiologist reads (often non-linear); PNG/JPEG exports of radiographs, and public
datasets made from them, bake it in. So ``voi="auto"`` (the default of ``mt.io.load``) applies
the VOI of single-frame grayscale images of those modalities, ``voi="always"`` applies it to any
single-frame grayscale image that carries one, and ``voi="none"`` never does.

Conventions, recorded in ``meta``: ``meta["voi"]`` says what was applied (or why not),
``meta["voi_range"]`` the output range when applied: ``(0, 2**bits - 1)`` of a LUT, or for a
window the range of the Modality LUT output (the stored range rescaled, as pydicom's
``apply_voi_lut`` does, but sorted). The first VOI of several is used (pydicom's ``index=0``), and
a VOI LUT Sequence is preferred to a window (pydicom's ``prefer_lut=True``). Inversion
(``meta["inverted"]``) happens once, last, over that output range: MONOCHROME1 with or without
PresentationLUTShape INVERSE is one inversion, as the DX IOD defines (PS3.3 C.8.11.7).

Example:
    >>> import numpy as np
    >>> window = Window(center=100.5, width=101.0, function="LINEAR")
    >>> window.apply(np.array([0.0, 50.0, 100.0, 151.0]), (0.0, 4095.0)).round(1).tolist()
    [0.0, 0.0, 2047.5, 4095.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medtransfer.errors import ConfigError, DicomError
from medtransfer.io.dicom_guard import reading
from medtransfer.io.dicom_header import SliceHeader
from medtransfer.io.dicom_intensity import check_rescale, presentation_inverted

__all__ = [
    "RADIOGRAPH_MODALITIES",
    "VOI_POLICIES",
    "Lut",
    "VoiPolicy",
    "Window",
    "check_voi_policy",
    "displayed_values",
]

#: Projection radiography modalities whose VOI ``voi="auto"`` applies.
RADIOGRAPH_MODALITIES = ("CR", "DX", "MG", "IO", "PX", "RG")
VoiPolicy = Literal["auto", "always", "none"]
VOI_POLICIES = ("auto", "always", "none")
_FIX = "pass voi='none' to load the values without it, or re-export the file"
_TAGS = [
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "WindowCenterWidthExplanation",
    "VOILUTSequence",
    "ModalityLUTSequence",
]


def check_voi_policy(voi: Any) -> None:
    """Raise a ConfigError unless ``voi`` is ``"auto"``, ``"always"`` or ``"none"``."""
    if voi not in VOI_POLICIES:
        raise ConfigError(
            f"voi={voi!r:.40} is not one of 'auto' (default: the VOI LUT or window of CR, DX "
            "and MG radiographs), 'always' (of any single-frame grayscale image) or 'none'."
        )


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): ``center``/``width`` with its function."""

    center: float
    width: float
    function: str = "LINEAR"
    explanation: str = ""

    def apply(self, values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
        """Window ``values`` onto ``value_range`` (float64)."""
        low, high = value_range
        x = values.astype(np.float64)
        if self.function == "SIGMOID":
            return (high - low) / (1.0 + np.exp(-4.0 * (x - self.center) / self.width)) + low
        if self.function == "LINEAR_EXACT":
            fraction = (x - self.center) / self.width + 0.5
        elif self.width == 1:  # LINEAR of width 1 is a threshold
            fraction = (x > self.center - 0.5).astype(np.float64)
        else:
            fraction = (x - (self.center - 0.5)) / (self.width - 1.0) + 0.5
        return np.clip(fraction, 0.0, 1.0) * (high - low) + low

    def describe(self) -> str:
        what = f"window center {self.center:g}, width {self.width:g} ({self.function})"
        return f"{what} '{self.explanation}'" if self.explanation else what


@dataclass(frozen=True)
class Lut:
    """A lookup table (VOI LUT or Modality LUT item): ``first`` maps to ``table[0]``."""

    first: int
    bits: int
    table: np.ndarray
    explanation: str = ""

    @property
    def output_range(self) -> tuple[float, float]:
        return 0.0, float((1 << self.bits) - 1)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Values below ``first`` get the first entry, beyond the table the last (PS3.3 C.11.2.1.1)."""
        index = np.floor(values.astype(np.float64)) - self.first
        index = np.clip(index, 0, len(self.table) - 1).astype(np.intp)
        return self.table[index].astype(np.float64)

    def describe(self, kind: str) -> str:
        what = f"{kind} ({len(self.table)} entries, {self.bits} bits)"
        return f"{what} '{self.explanation}'" if self.explanation else what


def displayed_values(
    stored: np.ndarray, header: SliceHeader, *, dtype: Any, voi: VoiPolicy
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Values of a single-frame grayscale image through Modality LUT, VOI and inversion.

    Returns the values (``dtype``), or ``None`` when the image has neither a Modality LUT
    Sequence nor a VOI to apply under ``voi`` (the caller rescales as for any image), and the
    ``meta`` entries that say what was done.

    Raises:
        DicomError: a window or LUT that cannot be applied (width 0, unknown function, a LUT
            shorter than its descriptor), naming the file and the field.
    """
    modality = header.modality.strip().upper()
    wanted = voi == "always" or voi == "auto" and modality in RADIOGRAPH_MODALITIES
    ds = _display_attributes(header)
    modality_lut = _lut(ds, "ModalityLUTSequence", header)
    transform = _voi(ds, header) if wanted else None
    meta: dict[str, Any] = {"voi": _why_not(ds, header, voi, modality)}
    if modality_lut is None and transform is None:
        return None, meta
    if modality_lut is not None:
        values = modality_lut.apply(stored)
        value_range = modality_lut.output_range
        meta["modality_lut"] = modality_lut.describe("Modality LUT")
    else:
        check_rescale(header.rescale_slope, header.rescale_intercept, source=header.path)
        values = stored.astype(np.float64) * header.rescale_slope + header.rescale_intercept
        value_range = _rescaled_range(header)
    if isinstance(transform, Window):
        values = transform.apply(values, value_range)
        meta["voi"] = transform.describe()
    elif isinstance(transform, Lut):
        values = transform.apply(values)
        value_range = transform.output_range
        meta["voi"] = transform.describe("VOI LUT")
    if transform is not None:
        meta["voi_range"] = value_range
    if presentation_inverted(header):
        values = value_range[0] + value_range[1] - values
    return values.astype(dtype), meta


def _display_attributes(header: SliceHeader) -> Any:
    import pydicom

    with reading(header.path):
        return pydicom.dcmread(header.path, stop_before_pixels=True, specific_tags=_TAGS)


def _why_not(ds: Any, header: SliceHeader, voi: str, modality: str) -> str:
    if not (ds.get("VOILUTSequence") or "WindowCenter" in ds):
        return "none in the file"
    if voi == "none":
        return "not applied (voi='none')"
    listed = ", ".join(RADIOGRAPH_MODALITIES)
    return (
        f"not applied: modality {modality or 'unknown'} (voi='auto' applies it to {listed}; "
        "voi='always' to any image)"
    )


def _rescaled_range(header: SliceHeader) -> tuple[float, float]:
    bits = header.bits_stored
    if header.pixel_representation == 1:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    ends = sorted(v * header.rescale_slope + header.rescale_intercept for v in (low, high))
    return float(ends[0]), float(ends[1])


def _voi(ds: Any, header: SliceHeader) -> Window | Lut | None:
    lut = _lut(ds, "VOILUTSequence", header)
    if lut is not None:
        return lut
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    path = header.path
    centers, widths = _numbers(ds, "WindowCenter", path), _numbers(ds, "WindowWidth", path)
    if not centers or not widths:
        return None  # present but empty (type 2): no window
    function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    center, width = centers[0], widths[0]
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        raise DicomError(
            f"{path}: VOILUTFunction {function!r:.30} is not LINEAR, LINEAR_EXACT or SIGMOID, "
            f"so the window cannot be applied; {_FIX}."
        )
    if width < 1 if function == "LINEAR" else width <= 0:
        raise DicomError(
            f"{path}: WindowWidth {width:g} is impossible for a {function} window (it must be "
            f"{'>= 1' if function == 'LINEAR' else '> 0'}); {_FIX}."
        )
    explanation = ds.get("WindowCenterWidthExplanation", "")
    if not isinstance(explanation, str):
        explanation = explanation[0] if len(explanation) else ""
    return Window(center, width, function, str(explanation).strip())


def _numbers(ds: Any, keyword: str, path: Any) -> list[float]:
    value = ds[keyword].value
    values = value if hasattr(value, "__len__") and not isinstance(value, str) else [value]
    try:
        numbers = [float(v) for v in values if v not in (None, "")]
    except (TypeError, ValueError) as err:
        raise DicomError(f"{path}: {keyword} is not a list of numbers; {_FIX}.") from err
    if not all(math.isfinite(v) for v in numbers):
        raise DicomError(f"{path}: {keyword} {numbers} is not finite; {_FIX}.")
    return numbers


def _lut(ds: Any, keyword: str, header: SliceHeader) -> Lut | None:
    items = ds.get(keyword)
    if not items:
        return None
    item = items[0]
    descriptor, data = item.get("LUTDescriptor"), item.get("LUTData")
    if descriptor is None or data is None:
        return None  # pydicom ignores such an item too
    path = header.path
    try:
        entries, first, bits = (int(v) for v in descriptor)
    except (TypeError, ValueError) as err:
        raise DicomError(
            f"{path}: the LUTDescriptor of {keyword} is not three numbers; {_FIX}."
        ) from err
    entries = entries or 65536
    if not 1 <= bits <= 16:
        raise DicomError(f"{path}: {keyword} has {bits}-bit entries (1..16 expected); {_FIX}.")
    if header.pixel_representation == 1 and first >= 32768:  # US encoding of a signed value
        first -= 65536
    big_endian = header.transfer_syntax == "1.2.840.10008.1.2.2"
    table = _lut_table(item["LUTData"].value, big_endian, entries, bits)
    if table is None:
        raise DicomError(
            f"{path}: the LUTData of {keyword} holds fewer than the {entries} entries its "
            f"LUTDescriptor declares; {_FIX}."
        )
    explanation = str(item.get("LUTExplanation", "") or "").strip()
    return Lut(first, bits, table & ((1 << bits) - 1), explanation)


def _lut_table(value: Any, big_endian: bool, entries: int, bits: int) -> np.ndarray | None:
    if isinstance(value, bytes | bytearray):  # OW
        words = np.frombuffer(value[: len(value) // 2 * 2], dtype=">u2" if big_endian else "<u2")
        if len(words) < entries and bits <= 8 and len(value) >= entries:
            words = np.frombuffer(value, dtype=np.uint8)  # 8-bit entries packed two per word
    else:
        words = np.asarray(list(value) if isinstance(value, list | tuple) else [value])
    if len(words) < entries:
        return None
    return words[:entries].astype(np.int64)
