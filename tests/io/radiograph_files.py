"""Tiny radiographs for the io tests: single-frame DICOM DX/CR/MG files and PNG/TIFF exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SOP_CLASSES = {
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray - For Presentation
    "CT": "1.2.840.10008.5.1.4.1.1.2",
}


def radiograph_pixels(rows: int = 6, columns: int = 5, bits: int = 12) -> np.ndarray:
    """Distinct stored values (rows, columns) so any flip or transpose shows."""
    values = np.arange(rows * columns, dtype=np.int64).reshape(rows, columns) * 37
    return (values % (1 << bits)).astype(np.uint16)


def write_radiograph(
    path: Path,
    pixels: np.ndarray,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    **attributes: Any,
) -> Path:
    """A single-frame radiograph without patient position (as DX files are), uncompressed.

    ``pixels`` are stored values (rows, columns); ``attributes`` are DICOM keywords set as given
    (``WindowCenter=...``, ``VOILUTSequence=voi_lut(...)``, ``ImagerPixelSpacing=[...]``).
    """
    pixels = np.asarray(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES.get(modality, SOP_CLASSES["DX"])
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = "RADIOGRAPH-TEST", modality
    ds.PatientOrientation = ["L", "F"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = 16 if pixels.dtype.itemsize == 2 else 8
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def lut_item(first: int, table: list[int], bits: int, explanation: str = "") -> Sequence:
    """A one-item VOI/Modality LUT sequence with US data."""
    item = Dataset()
    item.LUTDescriptor = [len(table), first, bits]
    item.add_new("LUTData", "US", list(table))
    if explanation:
        item.LUTExplanation = explanation
    return Sequence([item])


def read_pixels(path: Path) -> np.ndarray:
    """The stored pixel array (rows, columns) as pydicom decodes it."""
    return pydicom.dcmread(path).pixel_array
