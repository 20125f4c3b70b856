"""Phantoms written to NIfTI and DICOM read back identically through mt.io and load_manifest."""

from __future__ import annotations

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.data.synthetic import phantoms, write_phantoms
from medtransfer.errors import ConfigError
from tests.fixtures import file_digests

SHAPE = (32, 32, 8)


@pytest.fixture(scope="module")
def in_memory():
    return phantoms(2, seed=11, shape=SHAPE, lesion_probability=1)


def test_nifti_round_trip(tmp_path, in_memory):
    written = write_phantoms(in_memory, tmp_path)
    for case, files in zip(in_memory, written):
        assert files["image"] == str(tmp_path / "imagesTr" / f"{case['case_id']}.nii.gz")
        image = mt.io.load(files["image"])
        label = mt.io.load(files["label"])
        np.testing.assert_array_equal(np.asarray(image), np.asarray(case["image"]))
        np.testing.assert_array_equal(np.asarray(label), np.asarray(case["label"]))
        np.testing.assert_allclose(np.asarray(image.affine), np.asarray(case["image"].affine))
        assert tuple(image.meta["spacing"]) == pytest.approx(tuple(case["image"].meta["spacing"]))
        assert files["lesions"] == case["lesions"] and files["has_lesion"] is True


def test_manifest_written_next_to_the_files_loads_back(tmp_path, in_memory):
    written = write_phantoms(in_memory, tmp_path / "out")
    (tmp_path / "out").rename(tmp_path / "moved")  # relative paths: the folder can move
    records = mt.data.load_manifest(tmp_path / "moved" / "manifest.csv")
    assert [r["case_id"] for r in records] == [r["case_id"] for r in written]
    assert records[0]["image"] == str(tmp_path / "moved" / "imagesTr" / "phantom-000.nii.gz")
    assert records[0]["has_lesion"] == "True" and records[0]["patient_id"] == "phantom-000"


def test_dicom_round_trip_keeps_hu_and_geometry(tmp_path, in_memory):
    records = phantoms(
        2, task="classification", seed=11, shape=SHAPE, lesion_probability=1,
        output_dir=tmp_path, image_format="dicom",
    )  # fmt: skip
    for case, files in zip(in_memory, records):
        assert files["image"] == str(tmp_path / "dicom" / case["case_id"])
        assert files["label"] == 1 and files["mask"].endswith(".nii.gz")
        image = mt.io.load(files["image"])
        assert tuple(image.shape) == SHAPE
        assert np.abs(np.asarray(image) - np.asarray(case["image"])).max() <= 0.5 + 1e-3
        np.testing.assert_allclose(
            np.asarray(image.affine), np.asarray(case["image"].affine), atol=1e-3
        )
        mask = mt.io.load(files["mask"])
        np.testing.assert_array_equal(np.asarray(mask), np.asarray(case["label"]))
    manifest = mt.data.load_manifest(tmp_path / "manifest.csv")
    assert [r["label"] for r in manifest] == [1, 1]
    assert manifest[0]["mask"] == str(tmp_path / "labelsTr" / "phantom-000.nii.gz")


def test_writing_twice_gives_identical_files(tmp_path, in_memory):
    for fmt in ("nifti", "dicom"):
        write_phantoms(in_memory, tmp_path / f"a-{fmt}", image_format=fmt)
        write_phantoms(in_memory, tmp_path / f"b-{fmt}", image_format=fmt)
        first, second = file_digests(tmp_path / f"a-{fmt}"), file_digests(tmp_path / f"b-{fmt}")
        assert first == second and len(first) > 3


def test_write_arguments_are_checked(tmp_path, in_memory):
    with pytest.raises(ConfigError, match="image_format"):
        write_phantoms(in_memory, tmp_path, image_format="png")
    with pytest.raises(ConfigError, match="suffix"):
        write_phantoms(in_memory, tmp_path, suffix=".mha")
