"""Records of the committed samples (data_samples/) and tiny in-memory volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

import medtransfer as mt

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


@pytest.fixture(scope="session")
def sample_records():
    """The four records of data_samples/manifest.csv (three NIfTI pairs, one DICOM series)."""
    return mt.data.load_manifest(SAMPLES / "manifest.csv")
