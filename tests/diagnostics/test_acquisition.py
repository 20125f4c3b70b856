"""Acquisition fingerprints: read from real DICOM headers and NIfTI grids, no PHI, differences named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.diagnostics.acquisition import acquisition_fingerprint, compare_acquisition

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_dicom_ct_fingerprint_reads_scanner_and_tube_voltage():
    fp = acquisition_fingerprint(TEST_FILES / "CT_small.dcm")
    assert fp["format"] == "dicom" and fp["modality"] == "CT"
    assert fp["manufacturer"] == "GE MEDICAL SYSTEMS" and fp["model"] == "RHAPSODE"
    assert fp["kvp"] == 120.0 and fp["slice_thickness_mm"] == 5.0
    assert fp["matrix"] == "128x128"
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    values = {str(v) for v in fp.values()}
    assert str(ds.PatientName) not in values and str(ds.PatientID) not in values


def test_dicom_series_folder_fingerprint(tmp_path):
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    ds.save_as(tmp_path / "a.dcm")
    fp = acquisition_fingerprint(tmp_path)
    assert fp["modality"] == "MR" and fp["manufacturer"] == "TOSHIBA_MEC"
    assert fp["slice_thickness_mm"] == pytest.approx(0.8)


def test_nifti_fingerprint_takes_grid_and_manifest_columns(tmp_path):
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    path = mt.io.save(np.zeros((6, 7, 5), np.float32), tmp_path / "t1.nii.gz", affine=affine)
    fp = acquisition_fingerprint(path, {"modality": "MR", "field_strength_t": "3", "site": "B"})
    assert fp["spacing_z_mm"] == 3.0 and fp["spacing_x_mm"] == pytest.approx(0.9)
    assert fp["field_strength_t"] == 3.0 and fp["modality"] == "MR" and fp["orientation"] == "RAS"


def test_compare_names_numeric_and_text_differences():
    a = [{"manufacturer": "GE", "spacing_z_mm": 1.0, "kvp": 120.0}] * 4
    b = [{"manufacturer": "Siemens", "spacing_z_mm": 1.05, "kvp": 100.0}] * 3
    rows = {r["field"]: r for r in compare_acquisition(a, b)}
    assert rows["manufacturer"]["differs"] and rows["kvp"]["differs"]
    assert not rows["spacing_z_mm"]["differs"]  # within 10%
    assert "field_strength_t" not in rows  # unknown at both sites
    one_sided = compare_acquisition([{"model": "X"}], [{}])
    assert one_sided[0]["target"] == "unknown" and one_sided[0]["differs"]
