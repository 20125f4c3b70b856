"""Stored DICOM values to physical values: MONOCHROME1 inversion, then RescaleSlope/Intercept."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medtransfer.errors import DicomError

__all__ = ["check_rescale", "invert_monochrome1", "presentation_inverted", "to_physical"]


def check_rescale(slope: float, intercept: float, *, source: object) -> None:
    """Refuse a rescale no real image has: slope 0, NaN or inf; intercept NaN or inf.

    Raises:
        DicomError: naming ``source`` (the file) and the field.

    Example:
        >>> check_rescale(1.0, -1024.0, source="a.dcm")
        >>> try:
        ...     check_rescale(0.0, -1024.0, source="a.dcm")
        ... except DicomError as err:
        ...     print(str(err)[:56])
        a.dcm: RescaleSlope 0.0 is not a finite, non-zero number
    """
    if not math.isfinite(slope) or slope == 0:
        problem = f"RescaleSlope {slope} is not a finite, non-zero number"
    elif not math.isfinite(intercept):
        problem = f"RescaleIntercept {intercept} is not a finite number"
    else:
        return
    raise DicomError(
        f"{source}: {problem}, so stored values cannot be turned into physical ones (HU). The "
        "header is damaged: re-export the file, or remove it from the series."
    )


def presentation_inverted(header: Any) -> bool:
    """Whether low values are displayed white: MONOCHROME1, or PresentationLUTShape INVERSE.

    One inversion either way: the DX IOD requires INVERSE with MONOCHROME1 to describe the same
    inversion (PS3.3 C.8.11.7), so the two never cancel out.

    Example:
        >>> from types import SimpleNamespace as H
        >>> presentation_inverted(H(photometric="MONOCHROME2", presentation_lut_shape="INVERSE"))
        True
    """
    shape = getattr(header, "presentation_lut_shape", "")
    return header.photometric == "MONOCHROME1" or shape == "INVERSE"


def invert_monochrome1(stored: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Map MONOCHROME1 (low = white) to MONOCHROME2 over the stored-value range.

    ``x -> min + max - x`` with the range of ``bits_stored`` bits, so every slice of a series is
    inverted the same way (a per-slice min/max would make slices disagree).

    Example:
        >>> invert_monochrome1(np.array([0, 1, 4095]), 12, signed=False).tolist()
        [4095, 4094, 0]
    """
    if signed:
        low, high = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    else:
        low, high = 0, (1 << bits_stored) - 1
    wide = stored.astype(np.int64 if stored.dtype.kind in "iu" else stored.dtype)
    return (low + high) - wide


def to_physical(
    stored: np.ndarray,
    out: np.ndarray,
    *,
    slope: float,
    intercept: float,
    monochrome1: bool = False,
    bits_stored: int = 16,
    signed: bool = False,
) -> np.ndarray:
    """Write ``stored * slope + intercept`` into ``out`` (float), inverting MONOCHROME1 first.

    Example:
        >>> out = np.empty(2, np.float32)
        >>> to_physical(np.array([0, 1024], np.uint16), out, slope=1.0, intercept=-1024.0).tolist()
        [-1024.0, 0.0]
    """
    if monochrome1:
        stored = invert_monochrome1(stored, bits_stored, signed)
    if slope == 1.0 and intercept == 0.0:
        out[...] = stored
        return out
    np.multiply(stored, out.dtype.type(slope), out=out, casting="unsafe")
    out += out.dtype.type(intercept)
    return out
