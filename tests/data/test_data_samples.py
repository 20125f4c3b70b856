"""The committed data_samples/ folder: small, readable, and exactly what make_samples.py makes."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import numpy as np

import medtransfer as mt
from tests.fixtures import file_digests

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def _digests(folder: Path) -> dict[str, str]:
    """The samples' data files (not the script that makes them, nor its bytecode)."""
    return file_digests(folder, lambda p: p.suffix != ".py" and "__pycache__" not in p.parts)


def test_samples_are_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 10 * 2**20


def test_manifest_csv_loads_and_images_match():
    records = mt.data.load_manifest(SAMPLES / "manifest.csv")
    assert [r["case_id"] for r in records] == [
        "phantom-000",
        "phantom-001",
        "phantom-002",
        "phantom-000-dicom",
    ]
    assert records[3]["patient_id"] == records[0]["patient_id"] == "phantom-000"
    nifti = mt.io.load(records[0]["image"])
    dicom = mt.io.load(records[3]["image"])  # the same case as a DICOM series
    assert tuple(nifti.shape) == tuple(dicom.shape) == (64, 64, 32)
    assert np.abs(np.asarray(nifti) - np.asarray(dicom)).max() <= 0.5 + 1e-3
    np.testing.assert_allclose(np.asarray(nifti.affine), np.asarray(dicom.affine), atol=1e-3)
    label = np.asarray(mt.io.load(records[0]["label"]))
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3, 4}  # phantom-000 has a lesion
    # the patient-level split keeps the NIfTI and DICOM rows of phantom-000 together
    train, val = mt.data.split(records, fractions=(0.5, 0.5), seed=0)[:2]
    assert any(
        len([r for r in part if r["patient_id"] == "phantom-000"]) == 2 for part in (train, val)
    )


def test_msd_dataset_json_loads():
    records = mt.data.load_manifest(SAMPLES / "dataset.json")
    assert [(r["case_id"], r["subset"]) for r in records] == [
        ("phantom-000", "training"),
        ("phantom-001", "training"),
        ("phantom-002", "training"),
        ("phantom-003", "test"),
    ]
    assert records[-1]["label"] is None


def test_make_samples_reproduces_the_committed_files(tmp_path):
    shutil.copy(SAMPLES / "make_samples.py", tmp_path / "make_samples.py")
    runpy.run_path(str(tmp_path / "make_samples.py"), run_name="__main__")
    assert _digests(tmp_path) == _digests(SAMPLES)
