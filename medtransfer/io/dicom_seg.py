"""``save_dicom_seg``: a label map as a DICOM Segmentation object referencing its source series.

The mask is in the layout of ``mt.io.load(reference_series)``: ``(columns, rows, slices)`` with
slices ordered by ImagePositionPatient along the normal. Slice ``k`` is written as the frame of the
source instance that holds slice ``k`` of the loaded volume, found by position (the same
ordering as :func:`medtransfer.io.load`, never file names or InstanceNumber), so the SEG overlays
its CT/MR in any viewer that reads DICOM-SEG (3D Slicer, OHIF, ...). Needs ``highdicom``
(``pip install "medtransfer[seg]"``).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.errors import (
    ConfigError,
    DataWarning,
    DicomError,
    InputPathError,
    MedTransferError,
    SeriesError,
)
from medtransfer.io.atomic import atomic_path
from medtransfer.io.dicom_geometry import plan_volume
from medtransfer.io.dicom_seg_codes import SEGMENT_CODES, Segment, parse_label, segment_codes
from medtransfer.io.dicom_seg_values import (
    check_arguments,
    check_copied_values,
    describe,
    hidden_pydicom_chatter,
    invalid_keywords,
)
from medtransfer.io.dicom_volume import frame_geometry
from medtransfer.io.load import choose_series
from medtransfer.io.series_discovery import scan_folder

__all__ = ["SEGMENT_CODES", "save_dicom_seg", "segment_codes"]

_AFFINE_TOLERANCE_MM = 1e-3
# Type 2 attributes of the Patient and General Study modules: the SEG copies them from the source,
# and the standard lets them be empty when the source lacks them (e.g. anonymised exports).
_TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName",
)  # fmt: skip


def _as_numpy(mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
    affine = getattr(mask, "affine", None)
    if affine is not None and hasattr(affine, "detach"):
        affine = affine.detach().cpu().numpy()
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu()
        mask = mask.as_tensor() if hasattr(mask, "as_tensor") else mask
        mask = mask.numpy()
    array = np.asarray(mask)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]  # a channel-first single-channel mask
    if array.ndim != 3:
        raise ConfigError(
            f"The mask must be a 3D label map (columns, rows, slices) like mt.io.load of the "
            f"reference series; got shape {array.shape}."
        )
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        raise ConfigError(
            "The mask holds non-integer values; save a label map (predict(..., output='labels'))."
        )
    return array.astype(np.int64), None if affine is None else np.asarray(affine, np.float64)


def _segments(array: np.ndarray, labels: Mapping[int, Any] | None) -> list[Segment]:
    present = sorted(int(v) for v in np.unique(array) if v != 0)
    if labels is None:
        labels = {value: f"Segment {value}" for value in present}
    if not isinstance(labels, Mapping) or not labels:
        raise ConfigError("labels must be a non-empty dict {label value: name}, e.g. {1: 'liver'}.")
    unnamed = [v for v in present if v not in labels]
    if unnamed:
        raise ConfigError(
            f"The mask holds label value(s) {unnamed} that labels does not name (labels has "
            f"{sorted(labels)}); add them, e.g. labels={{{unnamed[0]}: 'lesion'}}, or zero them."
        )
    segments = []
    for value in sorted(labels):
        if not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"labels key {value!r} must be a label value >= 1 (0 is background).")
        segments.append(parse_label(int(value), labels[value]))
    return segments


def _warn_generic(segments: list[Segment], path: Any, defaults: bool) -> None:
    """A DataWarning naming the classes written with the generic "Tissue" codes."""
    generic = {s.value: s.name for s in segments if not s.known}
    if not generic or defaults:  # "Segment 1"... are generic by design
        return
    listed = ", ".join(f"labels[{value}] {name!r}" for value, name in generic.items())
    value, name = next(iter(generic.items()))
    warnings.warn(
        f"{path}: no SNOMED CT code is known for {listed}, so the SEG codes "
        f"{'it' if len(generic) == 1 else 'them'} as the generic "
        f"category and type 'Tissue'. Give the codes, e.g. labels={{{value}: {{'name': "
        f"{name!r}, 'category': ('91723000', 'SCT', 'Anatomical Structure'), 'type': "
        "(code value, 'SCT', meaning)}} (see docs/io.md).",
        DataWarning,
        stacklevel=3,
    )


def _reference(folder: Path, series_uid: str | None) -> tuple[list[Any], np.ndarray]:
    """The source headers ordered like ``mt.io.load`` (by position) and the volume's affine."""
    import pydicom

    if not folder.exists():
        raise InputPathError(f"Reference series not found: {folder}. Pass the series folder.")
    if not folder.is_dir():
        raise InputPathError(f"{folder} is a file; pass the folder holding the reference series.")
    uid, headers = choose_series(folder, scan_folder(folder), series_uid, None)
    if any(h.frames > 1 or h.is_enhanced for h in headers) or any(
        h.position is None or h.orientation is None for h in headers
    ):
        raise SeriesError(
            f"series {uid}: save_dicom_seg supports series of single-frame images with "
            "ImagePositionPatient/ImageOrientationPatient (CT, MR, PET); this one is multi-frame "
            "or has no position."
        )
    frames = [frame_geometry(h) for h in headers]
    geometry = plan_volume(frames, name=uid, single_slice_thickness=headers[0].slice_thickness or 1)
    datasets = []
    for index in geometry.order:
        try:
            ds = pydicom.dcmread(headers[index].path, stop_before_pixels=True)
        except Exception as err:  # pydicom raises several types for damaged files
            raise DicomError(
                f"Cannot read {headers[index].path.name} of series {uid}: {err}"
            ) from err
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, None)  # present and empty, as Type 2 allows
        datasets.append(ds)
    # highdicom copies the patient/study attributes of the first source image
    check_copied_values(datasets[0], headers[geometry.order[0]].path, uid)
    return datasets, geometry.affine


def save_dicom_seg(
    mask: Any,
    reference_series: str | os.PathLike[str],
    path: str | os.PathLike[str],
    labels: Mapping[int, Any] | None = None,
    *,
    series_uid: str | None = None,
    series_description: str = "Segmentation",
    series_number: int = 300,
    content_label: str = "SEGMENTATION",
    content_description: str | None = None,
    algorithm_name: str = "medtransfer",
    algorithm_version: str | None = None,
) -> Path:
    """Write a label map as a binary DICOM-SEG that references ``reference_series`` (atomically).

    One segment per entry of ``labels``, numbered 1, 2, ... in increasing label value, with
    SNOMED CT property codes given per class or looked up from the name in pydicom's DICOM code
    dictionary (:mod:`medtransfer.io.dicom_seg_codes`: "white matter" is SCT 389080008); a name
    with no known code is coded "Tissue", with a DataWarning. Algorithm type AUTOMATIC, named ``algorithm_name`` with medtransfer's version. The
    SEG copies the source's patient and study attributes, as the standard requires; nothing
    about the patient is logged or put in messages. Empty frames are omitted.

    Args:
        mask: label map in ``mt.io.load(reference_series)`` layout ``(columns, rows, slices)``
            (e.g. ``predict`` on that series); a MetaTensor's affine must equal the series'.
        reference_series: folder of the source DICOM series (single-frame CT/MR/PET images).
        path: output file (``.dcm``).
        labels: ``{label value: name}``; or, per class, ``{value: {"name": ..., "type": code,
            "category": code}}`` with codes as ``(value, scheme, meaning)`` tuples or
            pydicom/highdicom codes (``category`` may be left out for types of the dictionary);
            or ``{value: (name, category_code, type_code)}``. Default: "Segment <value>" for each
            value in the mask. Every non-zero value in the mask must be named; a named value may
            be absent (empty segment).
        series_uid: which series of the folder when it holds several.
        series_description, series_number: of the new SEG series.
        content_label: ContentLabel (upper case, at most 16 characters).
        content_description: ContentDescription (free text, e.g. the model's name).
        algorithm_name, algorithm_version: the algorithm identification (default version:
            ``medtransfer.__version__``).

    Returns:
        The written path.

    Raises:
        ConfigError: bad labels or codes (naming ``labels[value]``), or a mask that is not a 3D
            label map.
        SeriesError: the mask's shape or affine does not match the series.
        InputPathError, DicomError: the series cannot be found or read; highdicom is missing.

    Example:
        >>> import numpy as np, tempfile, pathlib, medtransfer as mt
        >>> from medtransfer.io.dicom_seg import save_dicom_seg
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = mt.io.write_dicom_series(np.zeros((8, 6, 3)), folder / "ct", affine=np.eye(4))
        >>> mask = np.zeros((8, 6, 3), np.uint8); mask[2:5, 1:4, 1] = 1
        >>> save_dicom_seg(mask, folder / "ct", folder / "seg.dcm", labels={1: "liver"}).name
        'seg.dcm'
    """
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
    except ImportError as err:
        raise DicomError(
            'save_dicom_seg needs highdicom: pip install "medtransfer[seg]" (or highdicom).'
        ) from err
    array, affine = _as_numpy(mask)
    segments = _segments(array, labels)
    datasets, series_affine = _reference(Path(reference_series), series_uid)
    expected = (int(datasets[0].Columns), int(datasets[0].Rows), len(datasets))
    if array.shape != expected:
        raise SeriesError(
            f"The mask has shape {array.shape} but the reference series loads as {expected} "
            "(columns, rows, slices); pass a mask in mt.io.load(reference_series) layout, e.g. "
            "the output of predict on that series."
        )
    if affine is not None and not np.allclose(affine, series_affine, atol=_AFFINE_TOLERANCE_MM):
        raise SeriesError(
            "The mask's affine differs from the reference series' (mt.io.load(reference).affine): "
            "it was made on another image or grid. Predict on the reference series itself, or "
            "resample the mask to it."
        )
    if algorithm_version is None:  # dynamic: io must not import the package root (layers)
        algorithm_version = str(importlib.import_module("medtransfer").__version__)
    check_arguments(
        {
            "content_label": ("CS", content_label),
            "content_description": ("LO", content_description),
            "series_description": ("LO", series_description),
            "algorithm_name": ("LO", algorithm_name),
            "algorithm_version": ("LO", str(algorithm_version)),
            **{f"labels[{s.value}]": ("LO", s.name) for s in segments},
        }
    )
    try:  # only the caller's values go in here: their errors may be shown
        algorithm = hd.AlgorithmIdentificationSequence(
            name=algorithm_name,
            family=codes.cid7162.ArtificialIntelligence,
            version=algorithm_version,
        )
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=segment.name,
                segmented_property_category=segment.category,
                segmented_property_type=segment.type,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
            for number, segment in enumerate(segments, start=1)
        ]
    except (ValueError, TypeError) as err:
        raise ConfigError(f"Invalid segment or algorithm description: {err}") from err
    frames = array.transpose(2, 1, 0)  # (slices, rows, columns): frame k is source instance k
    onehot = np.stack([frames == segment.value for segment in segments], axis=-1)
    try:
        with hidden_pydicom_chatter() as hidden:
            seg = hd.seg.Segmentation(
                source_images=datasets,
                pixel_array=onehot,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="medtransfer",
                manufacturer_model_name=algorithm_name,
                software_versions=str(algorithm_version),
                device_serial_number="none",
                content_label=content_label,
                content_description=content_description,
                series_description=series_description,
            )
            with atomic_path(path) as tmp:
                seg.save_as(tmp)
    except MedTransferError:
        raise
    except Exception as err:  # highdicom/pydicom quote header values: never show their text
        found = invalid_keywords(datasets[0])
        cause = f"{describe(found)} is not valid DICOM" if found else type(err).__name__
        raise DicomError(
            f"Cannot write a DICOM-SEG for the series in {reference_series}: highdicom refused "
            f"the source ({cause}). Correct the source headers (or re-export the series) and "
            "retry. Details are not shown because they may quote patient data; in Python, "
            "see this error's __cause__."
        ) from err
    if hidden:
        warnings.warn(
            f"While writing {path}, pydicom/highdicom reported {'; '.join(hidden)} about the "
            "source headers, hidden because they may quote patient data. Check the reference "
            "series with a DICOM validator (e.g. dciodvfy) if the SEG does not open.",
            DataWarning,
            stacklevel=2,
        )
    _warn_generic(segments, path, defaults=labels is None)
    return Path(path)
