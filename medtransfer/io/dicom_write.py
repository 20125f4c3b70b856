"""Write a volume as a DICOM series (one uncompressed file per slice), geometry from its affine.

Used to make sample data, test fixtures and benchmark series; it is the inverse of loading a
DICOM folder: ``load(write_dicom_series(img, folder))`` gives back ``img`` (values rounded to the
rescale grid, affine to DICOM's decimal-string precision).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.errors import DicomError
from medtransfer.io.atomic import atomic_path, output_path_error

__all__ = ["write_dicom_series"]

_SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as close to ``value`` as fits."""
    for digits in range(10, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.1e}"


def _to_numpy_and_affine(image: Any, affine: Any) -> tuple[np.ndarray, np.ndarray]:
    if affine is None:
        affine = getattr(image, "affine", None)
    if affine is None:
        raise DicomError("write_dicom_series needs an affine: pass a MetaTensor or affine=.")
    if hasattr(affine, "detach"):
        affine = affine.detach().cpu().numpy()
    if hasattr(image, "detach"):
        image = image.detach().cpu()
        image = image.as_tensor().numpy() if hasattr(image, "as_tensor") else image.numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DicomError(
            f"write_dicom_series takes a 3D volume (i, j, k); got shape {array.shape}."
        )
    return array, np.asarray(affine, dtype=np.float64)


def _stored_values(array: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    stored = np.rint((array.astype(np.float64) - intercept) / slope)
    lo, hi = stored.min(initial=0), stored.max(initial=0)
    if lo >= 0 and hi <= np.iinfo(np.uint16).max:
        return stored.astype(np.uint16)
    if lo >= np.iinfo(np.int16).min and hi <= np.iinfo(np.int16).max:
        return stored.astype(np.int16)
    raise DicomError(
        f"Values {array.min()}..{array.max()} do not fit 16-bit storage with slope {slope} and "
        f"intercept {intercept}; pass a larger rescale_slope or another rescale_intercept."
    )


def write_dicom_series(
    image: Any,
    folder: str | os.PathLike[str],
    *,
    affine: Any = None,
    modality: str = "CT",
    series_description: str = "",
    series_number: int = 1,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    patient_id: str = "ANONYMOUS",
    patient_name: str = "Anonymous^",
    case_id: str | None = None,
    rescale_slope: float = 1.0,
    rescale_intercept: float | None = None,
    instance_numbers: Sequence[int] | None = None,
    file_names: Sequence[str] | None = None,
    uid_seed: str | None = None,
    study_date: str = "20000101",
) -> list[Path]:
    """Write ``image`` as single-frame, uncompressed (explicit VR little endian) DICOM files.

    Slice ``k`` is ``image[:, :, k]``; ImagePositionPatient/ImageOrientationPatient/PixelSpacing
    come from the RAS+ affine (converted to DICOM's LPS). Values are stored as 16-bit integers
    with RescaleSlope/RescaleIntercept, so HU survive the round trip to within ``slope / 2``.

    Args:
        image: 3D MetaTensor, tensor or array indexed (i, j, k).
        folder: output folder (created).
        affine: 4x4 voxel-to-RAS+ mm; defaults to ``image.affine``.
        modality: "CT", "MR" or any modality (others are written as Secondary Capture).
        series_description, series_number: written as is.
        series_uid, study_uid, frame_of_reference_uid: new UIDs when not given.
        patient_id, patient_name: synthetic identifiers; never pass real PHI here.
        case_id: written as ClinicalTrialSubjectID, so files can be traced to a manifest case.
        rescale_slope, rescale_intercept: stored = round((value - intercept) / slope);
            the intercept defaults to -1024 for CT and 0 otherwise.
        instance_numbers: InstanceNumber per slice (default 1..n); tests use it to scramble.
        file_names: file name per slice (default ``slice_0000.dcm``...).
        uid_seed: derive every UID deterministically from this text (reproducible samples).
        study_date: StudyDate/SeriesDate (YYYYMMDD).

    Returns:
        The written paths, in slice order.

    Example:
        >>> import numpy as np, tempfile
        >>> files = write_dicom_series(np.zeros((8, 8, 3)), tempfile.mkdtemp(), affine=np.eye(4))
        >>> len(files)
        3
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    array, affine = _to_numpy_and_affine(image, affine)
    n_slices = array.shape[2]
    for name, seq in (("instance_numbers", instance_numbers), ("file_names", file_names)):
        if seq is not None and len(seq) != n_slices:
            raise DicomError(f"{name} has {len(seq)} entries for {n_slices} slices.")

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=[uid_seed, kind]) if uid_seed else generate_uid()

    series_uid = series_uid or uid("series")
    study_uid = study_uid or uid("study")
    frame_of_reference_uid = frame_of_reference_uid or uid("frame-of-reference")
    if rescale_intercept is None:
        rescale_intercept = -1024.0 if modality == "CT" else 0.0
    stored = _stored_values(array, rescale_slope, rescale_intercept)

    lps = _RAS_TO_LPS @ affine
    col_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    row_cosine = col_step / np.linalg.norm(col_step)  # direction along a row (increasing column)
    col_cosine = row_step / np.linalg.norm(row_step)
    pixel_spacing = [np.linalg.norm(row_step), np.linalg.norm(col_step)]  # [row, column] spacing
    sop_class = _SOP_CLASSES.get(modality, _SECONDARY_CAPTURE)
    now = _dt.datetime(2000, 1, 1) if uid_seed else _dt.datetime.now()

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # read-only location, or a file where the folder should be
        raise output_path_error(folder / "slice.dcm", err) from err
    written = []
    for k in range(n_slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = uid(f"instance-{k}")
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PatientName, ds.PatientID = patient_name, patient_id
        if case_id is not None:
            ds.ClinicalTrialSubjectID = case_id
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = (
            modality,
            series_description,
            series_number,
        )
        ds.StudyDate = ds.SeriesDate = study_date
        ds.StudyTime = ds.SeriesTime = "000000"
        # Type 2 attributes (required, may be empty): viewers and highdicom expect them present
        ds.PatientBirthDate = ds.PatientSex = ds.StudyID = ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.ContentTime = now.strftime("%H%M%S")
        ds.InstanceNumber = int(instance_numbers[k]) if instance_numbers is not None else k + 1
        ds.ImagePositionPatient = [_ds(v) for v in lps[:3, 3] + k * slice_step]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_cosine, *col_cosine)]
        ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
        ds.SliceThickness = _ds(float(np.linalg.norm(slice_step)))
        ds.Rows, ds.Columns = array.shape[1], array.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = int(stored.dtype == np.int16)
        ds.RescaleIntercept, ds.RescaleSlope = _ds(rescale_intercept), _ds(rescale_slope)
        if modality == "CT":
            ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        name = file_names[k] if file_names is not None else f"slice_{k:04d}.dcm"
        with atomic_path(folder / name) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        written.append(folder / name)
    return written
