"""Acquisition fingerprints of two sites, side by side, with the differences named.

What a scanner and protocol leave in the headers: voxel spacing, slice thickness, orientation,
matrix size, modality, manufacturer and model, field strength (MR) or tube voltage (CT). Read
from the headers only (never the pixels; NIfTI files carry only the grid), and never a patient
attribute: no name, id, birth date, or free-text description.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ACQUISITION_FIELDS", "acquisition_fingerprint", "compare_acquisition"]

#: Fields of a fingerprint, in table order: (key, label, kind).
ACQUISITION_FIELDS = (
    ("format", "file format", "text"),
    ("modality", "modality", "text"),
    ("manufacturer", "manufacturer", "text"),
    ("model", "scanner model", "text"),
    ("field_strength_t", "field strength (T)", "number"),
    ("kvp", "tube voltage (kVp)", "number"),
    ("spacing_x_mm", "spacing x (mm)", "number"),
    ("spacing_y_mm", "spacing y (mm)", "number"),
    ("spacing_z_mm", "spacing z (mm)", "number"),
    ("slice_thickness_mm", "slice thickness (mm)", "number"),
    ("orientation", "orientation", "text"),
    ("matrix", "matrix size", "text"),
)
# DICOM keywords read for the fingerprint: acquisition, never patient, attributes.
_DICOM_TAGS = {
    "Modality": "modality",
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "model",
    "MagneticFieldStrength": "field_strength_t",
    "KVP": "kvp",
    "SliceThickness": "slice_thickness_mm",
}
_RELATIVE = 0.1  # numeric medians differing by more than 10% are a difference


def _grid(fingerprint: dict[str, Any], shape: Sequence[int], spacing: Sequence[float]) -> None:
    spacing = [float(s) for s in spacing][:3]
    for axis, value in zip("xyz", spacing):
        fingerprint[f"spacing_{axis}_mm"] = round(value, 4)
    fingerprint["matrix"] = "x".join(str(int(s)) for s in shape[:3])


def _dicom_fields(path: Path) -> dict[str, Any]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_DICOM_TAGS))
    except Exception:  # an unreadable header leaves those fields unknown (load reports why)
        return {}
    fields: dict[str, Any] = {}
    for keyword, key in _DICOM_TAGS.items():
        value = getattr(ds, keyword, None)
        if value in (None, ""):
            continue
        try:
            fields[key] = round(float(value), 4) if key in ("field_strength_t", "kvp",
                                                            "slice_thickness_mm") else str(value)  # fmt: skip
        except (TypeError, ValueError):
            continue
    return fields


def acquisition_fingerprint(image: Any, record: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The acquisition of one image from its header: grid, modality, scanner (no PHI).

    Args:
        image: a NIfTI file, a DICOM file or series folder, or an in-memory image (a
            ``MetaTensor`` gives its grid from the affine; an array only its shape).
        record: the manifest row; its ``modality``, ``manufacturer``, ``model``,
            ``field_strength_t`` or ``kvp`` columns fill what the header lacks (NIfTI has none).

    Returns:
        A dict with the keys of :data:`ACQUISITION_FIELDS` that are known.

    Example:
        >>> import numpy as np, medtransfer as mt, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t1.nii.gz"
        >>> _ = mt.io.save(np.zeros((4, 5, 6), np.float32), path, affine=np.diag([1, 1, 3.0, 1]))
        >>> fp = acquisition_fingerprint(path, {"modality": "MR"})
        >>> fp["modality"], fp["spacing_z_mm"], fp["matrix"], fp["orientation"]
        ('MR', 3.0, '4x5x6', 'RAS')
    """
    fingerprint: dict[str, Any] = {}
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if path.is_dir():
            from medtransfer.io import list_series

            series = [s for s in list_series(path) if s.shape is not None]
            if series:
                first = series[0]
                fingerprint.update(format="dicom", modality=first.modality)
                fingerprint["orientation"] = first.orientation
                _grid(fingerprint, first.shape or (), first.spacing or ())
                fingerprint.update(_dicom_fields(Path(first.files[0])))
        elif path.is_file():
            from medtransfer.io import image_info

            info = image_info(path)
            fingerprint.update(format=info.format, orientation=info.orientation)
            _grid(fingerprint, info.shape, info.spacing)
            if info.modality:
                fingerprint["modality"] = info.modality
            if info.format == "dicom":
                fingerprint.update(_dicom_fields(path))
    elif hasattr(image, "affine") and getattr(image, "ndim", 0) >= 2:
        import nibabel as nib

        affine = np.asarray(image.affine, dtype=np.float64)
        fingerprint["format"] = "in memory"
        fingerprint["orientation"] = "".join(nib.aff2axcodes(affine))
        shape = tuple(int(s) for s in image.shape[-3:])
        _grid(fingerprint, shape, np.linalg.norm(affine[:3, :3], axis=0))
    elif hasattr(image, "shape"):
        fingerprint["format"] = "in memory"
        fingerprint["matrix"] = "x".join(str(int(s)) for s in image.shape[-3:])
    for key, _, kind in ACQUISITION_FIELDS:
        value = (record or {}).get(key)
        if key not in fingerprint and value not in (None, ""):
            try:
                fingerprint[key] = float(value) if kind == "number" else str(value)
            except (TypeError, ValueError):
                continue
    return fingerprint


def _summary(values: list[Any], kind: str) -> tuple[str, Any]:
    """What a site's cases show for one field: text and the value compared."""
    known = [v for v in values if v is not None]
    if not known:
        return "unknown", None
    if kind == "number":
        array = np.asarray(known, dtype=np.float64)
        median = float(np.median(array))
        low, high = float(array.min()), float(array.max())
        text = f"{median:g}" if low == high else f"{median:g} ({low:g}-{high:g})"
        return text, median
    counts = Counter(str(v) for v in known)
    text = ", ".join(f"{value} ({n})" if len(counts) > 1 else value
                     for value, n in counts.most_common(4))  # fmt: skip
    if len(counts) > 4:
        text += ", ..."
    return text, set(counts)


def compare_acquisition(
    reference: Sequence[Mapping[str, Any]], target: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per field known at either site: both sites' values and whether they differ.

    Numbers are compared by their medians (a difference above 10% counts), text by the sets of
    values seen. Fields unknown at both sites are left out.

    Args:
        reference, target: per-case fingerprints from :func:`acquisition_fingerprint`.

    Returns:
        ``[{"field", "label", "reference", "target", "differs"}]`` in :data:`ACQUISITION_FIELDS`
        order.

    Example:
        >>> a = [{"modality": "MR", "spacing_z_mm": 1.0}] * 3
        >>> b = [{"modality": "MR", "spacing_z_mm": 3.0}] * 2
        >>> [(r["label"], r["reference"], r["target"], r["differs"]) for r in compare_acquisition(a, b)]
        [('modality', 'MR', 'MR', False), ('spacing z (mm)', '1', '3', True)]
    """
    rows = []
    for key, label, kind in ACQUISITION_FIELDS:
        ref_text, ref_value = _summary([c.get(key) for c in reference], kind)
        tgt_text, tgt_value = _summary([c.get(key) for c in target], kind)
        if ref_value is None and tgt_value is None:
            continue
        if ref_value is None or tgt_value is None:
            differs = True
        elif kind == "number":
            scale = max(abs(ref_value), abs(tgt_value), 1e-9)
            differs = abs(ref_value - tgt_value) / scale > _RELATIVE
        else:
            differs = ref_value != tgt_value
        rows.append(
            {"field": key, "label": label, "reference": ref_text, "target": tgt_text,
             "differs": bool(differs)}
        )  # fmt: skip
    return rows
