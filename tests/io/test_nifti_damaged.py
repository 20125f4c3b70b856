"""Damaged or suspicious NIfTI files: warnings for NaN/inf voxels, clear errors for the rest.

Every failure while reading is a NiftiError naming the file; a header declaring a huge volume is
refused before nibabel allocates anything.
"""

from __future__ import annotations

import gzip
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import DataWarning, NiftiError
from medtransfer.io import nifti


def _save(path, data=None):
    data = np.zeros((4, 5, 6), np.int16) if data is None else data
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _rewrite_header(path, offset, fmt, *values):
    """Patch header bytes of a .nii or .nii.gz file in place."""
    gz = path.name.endswith(".gz")
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return path


def test_nan_and_inf_voxels_warn_with_the_count_and_the_file(tmp_path):
    data = np.zeros((4, 5, 6), np.float32)
    data[0, 0, 0], data[1, 2, 3], data[3, 4, 5] = np.nan, np.inf, -np.inf
    path = _save(tmp_path / "holes.nii.gz", data)
    with pytest.warns(DataWarning, match=r"holes\.nii\.gz.*3 of 120 voxels"):
        image = mt.io.load(path)
    assert np.isnan(image.numpy()[0, 0, 0])  # the values are kept: the user decides


def test_finite_volumes_do_not_warn(tmp_path):
    path = _save(tmp_path / "clean.nii.gz", np.ones((4, 5, 6), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        mt.io.load(path)


@pytest.mark.parametrize(
    "sform",
    [
        np.diag([1.0, 1.0, 0.0, 1.0]),  # a zero column: all slices at the same place
        np.array([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),  # collinear axes
        np.diag([np.nan, 1.0, 1.0, 1.0]),
        np.diag([np.inf, 1.0, 1.0, 1.0]),
    ],
    ids=["zero-column", "collinear", "nan", "inf"],
)
def test_singular_or_non_finite_affine_is_a_nifti_error(tmp_path, sform):
    path = _save(tmp_path / "flat.nii.gz")  # nibabel refuses to write such an affine: patch it
    _rewrite_header(path, 252, "<2h", 0, 1)  # qform_code 0, sform_code 1
    _rewrite_header(path, 280, "<12f", *sform[:3].ravel())
    with pytest.raises(NiftiError, match=r"flat\.nii\.gz.*affine") as info:
        mt.io.load(path)
    assert "sform" in str(info.value)  # says what to fix


@pytest.mark.parametrize("name", ["big.nii", "big.nii.gz"])
def test_huge_declared_size_is_refused_before_allocating(tmp_path, monkeypatch, name):
    path = _rewrite_header(_save(tmp_path / name), 40, "<8h", 3, 20000, 20000, 20000, 1, 1, 1, 1)

    def no_read(*args, **kwargs):
        raise AssertionError("the data must not be read")

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", no_read)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "_get_scaled", no_read)
    with pytest.raises(NiftiError, match=name.replace(".", r"\.")) as info:
        mt.io.load(path)
    message = str(info.value)
    assert "TiB" in message and (
        "truncated" in message or "MEDTRANSFER_MAX_VOLUME_BYTES" in message
    )


def test_memory_budget_applies_to_compressed_files(tmp_path, monkeypatch):
    path = _save(tmp_path / "fits.nii.gz", np.zeros((40, 40, 40), np.int16))
    monkeypatch.setenv("MEDTRANSFER_MAX_VOLUME_BYTES", "64K")
    with pytest.raises(NiftiError, match=r"fits\.nii\.gz.*memory budget"):
        mt.io.load(path)
    monkeypatch.setenv("MEDTRANSFER_MAX_VOLUME_BYTES", "1M")
    assert mt.io.load(path).shape == (40, 40, 40)


def test_data_shorter_than_declared_is_a_nifti_error(tmp_path):
    path = _save(tmp_path / "short.nii")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(NiftiError, match=r"short\.nii.*truncated"):
        mt.io.load(path)


def test_empty_volume_is_a_nifti_error(tmp_path):
    path = _rewrite_header(_save(tmp_path / "empty.nii.gz"), 40, "<4h", 3, 4, 0, 6)
    with pytest.raises(NiftiError, match=r"empty\.nii\.gz"):
        mt.io.load(path)


@pytest.mark.parametrize(
    "error",
    [EOFError("eof"), struct.error("unpack"), ValueError("bad"), KeyError("k"), IndexError("i")],
    ids=lambda e: type(e).__name__,
)
def test_any_failure_inside_nibabel_becomes_a_nifti_error(tmp_path, monkeypatch, error):
    path = _save(tmp_path / "ok.nii.gz")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(nib, "load", fail)
    with pytest.raises(NiftiError, match=r"ok\.nii\.gz"):
        nifti.load_nifti(path)


def test_damaged_gzip_stream_is_a_nifti_error(tmp_path):
    path = _save(tmp_path / "zip.nii.gz", np.arange(120, dtype=np.int16).reshape(4, 5, 6))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(NiftiError, match=r"zip\.nii\.gz"):
        mt.io.load(path)


@pytest.mark.parametrize("shape", [(4, 5, 6, 2, 3), (4, 5, 6, 1, 3)])
def test_more_than_one_extra_axis_is_refused(tmp_path, shape):
    path = _save(tmp_path / "five.nii.gz", np.zeros(shape, np.int16))
    with pytest.raises(NiftiError, match=r"five\.nii\.gz has dimensions"):
        mt.io.load(path)
    squeezable = _save(tmp_path / "ok.nii.gz", np.zeros((4, 5, 6, 2, 1, 1), np.int16))
    assert mt.io.load(squeezable).shape == (4, 5, 6, 2)
