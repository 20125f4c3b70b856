"""NIfTI loading and saving: nibabel's affine, exact round trips, clear errors, atomic writes."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import InputPathError, NiftiError
from tests.fixtures import ct_volume, make_affine, write_series


def _write_nifti(path, data, affine, sform_code=1, qform_code=0):
    img = nib.Nifti1Image(data, affine)
    img.header.set_sform(affine, code=sform_code)
    img.header.set_qform(affine if qform_code else None, code=qform_code)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_affine_and_values_equal_nibabel(tmp_path, name):
    data = ct_volume((9, 7, 5))
    affine = make_affine(angles=(0.3, 0.1, -0.2))
    path = _write_nifti(tmp_path / name, data, affine)

    image = mt.io.load(path)

    reference = nib.load(str(path))
    np.testing.assert_array_equal(image.affine.numpy(), reference.affine)
    np.testing.assert_array_equal(image.numpy(), reference.get_fdata())
    assert image.meta["spacing"] == pytest.approx(
        tuple(np.linalg.norm(reference.affine[:3, :3], axis=0))
    )
    assert image.dtype == np.float32 or str(image.dtype) == "torch.float32"


def test_qform_only_file_uses_nibabels_choice(tmp_path):
    affine = make_affine(spacing=(1.5, 1.5, 3.0))
    path = _write_nifti(
        tmp_path / "q.nii.gz", ct_volume((4, 4, 4)), affine, sform_code=0, qform_code=1
    )
    np.testing.assert_allclose(mt.io.load(path).affine.numpy(), nib.load(str(path)).affine)


def test_scaling_is_applied_and_labels_keep_their_type(tmp_path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(2.0, -5.0)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    np.testing.assert_allclose(mt.io.load(tmp_path / "scaled.nii.gz").numpy(), raw * 2.0 - 5.0)

    labels = np.zeros((5, 5, 5), np.uint8)
    labels[1:3, 1:3, 1:3] = 2
    mt.io.save(labels, tmp_path / "mask.nii.gz", affine=np.eye(4))
    loaded = mt.io.load(tmp_path / "mask.nii.gz", dtype=None)
    assert loaded.numpy().dtype == np.uint8
    np.testing.assert_array_equal(loaded.numpy(), labels)


def test_round_trip_nifti_is_exact(tmp_path):
    path = _write_nifti(tmp_path / "a.nii.gz", ct_volume(), make_affine(angles=(0.2, 0.0, 0.4)))
    first = mt.io.load(path)
    mt.io.save(first, tmp_path / "b.nii.gz")
    second = mt.io.load(tmp_path / "b.nii.gz")
    np.testing.assert_array_equal(second.affine.numpy(), first.affine.numpy())
    np.testing.assert_array_equal(second.numpy(), first.numpy())


def test_dicom_to_nifti_keeps_geometry_and_values(tmp_path):
    volume, affine = ct_volume(), make_affine(angles=(0.1, 0.2, 0.3))
    write_series(tmp_path / "dicom", volume, affine)
    ct = mt.io.load(tmp_path / "dicom")
    mt.io.save(ct, tmp_path / "ct.nii.gz")
    back = mt.io.load(tmp_path / "ct.nii.gz")
    np.testing.assert_allclose(back.affine.numpy(), ct.affine.numpy(), atol=1e-5)  # float32 header
    np.testing.assert_array_equal(back.numpy(), volume)
    header = nib.load(str(tmp_path / "ct.nii.gz")).header
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1


def test_sheared_affine_is_kept_in_the_sform(tmp_path):
    sheared = make_affine(spacing=(1.0, 1.0, 2.0))
    sheared[:3, 2] = [0.0, 0.7, 2.0]
    mt.io.save(np.zeros((3, 3, 3), np.float32), tmp_path / "tilt.nii.gz", affine=sheared)
    header = nib.load(str(tmp_path / "tilt.nii.gz")).header
    assert int(header["qform_code"]) == 0
    np.testing.assert_allclose(
        mt.io.load(tmp_path / "tilt.nii.gz").affine.numpy(), sheared, atol=1e-6
    )


def test_four_dimensional_images_keep_channels_last(tmp_path):
    data = np.random.default_rng(0).random((6, 5, 4, 3)).astype(np.float32)
    path = _write_nifti(tmp_path / "multi.nii.gz", data, np.eye(4))
    image = mt.io.load(path)
    assert image.shape == (6, 5, 4, 3)
    assert image.meta["original_channel_dim"] == -1


def test_missing_corrupt_and_misnamed_files_raise_clear_errors(tmp_path):
    with pytest.raises(InputPathError, match="Not found"):
        mt.io.load(tmp_path / "absent.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(gzip.compress(b"garbage" * 10))
    with pytest.raises(NiftiError, match="broken.nii.gz"):
        mt.io.load(tmp_path / "broken.nii.gz")
    good = _write_nifti(tmp_path / "good.nii.gz", ct_volume(), np.eye(4))
    (tmp_path / "cut.nii.gz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(NiftiError, match="cut.nii.gz"):
        mt.io.load(tmp_path / "cut.nii.gz")
    with pytest.raises(NiftiError, match=r"\.nii or \.nii\.gz"):
        mt.io.save(np.zeros((2, 2, 2)), tmp_path / "out.png", affine=np.eye(4))
    with pytest.raises(NiftiError, match="affine"):
        mt.io.save(np.zeros((2, 2, 2)), tmp_path / "out.nii.gz")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    target = tmp_path / "kept.nii.gz"
    mt.io.save(np.ones((2, 2, 2), np.float32), target, affine=np.eye(4))
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", crash)
    with pytest.raises(NiftiError, match="disk full"):
        mt.io.save(np.zeros((2, 2, 2), np.float32), target, affine=np.eye(4))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.nii.gz"]


def test_a_label_map_loaded_as_float_is_saved_back_in_its_stored_type(tmp_path):
    import torch

    labels = np.zeros((6, 5, 4), np.uint8)
    labels[1:3, 1:4, 1:3] = 2
    source = mt.io.save(labels, tmp_path / "label.nii.gz", affine=np.eye(4))
    loaded = mt.io.load(source)  # float32 by default
    assert loaded.dtype == torch.float32 and loaded.meta["stored_dtype"] == "uint8"
    again = mt.io.save(loaded, tmp_path / "again.nii.gz")
    assert nib.load(again).get_data_dtype() == np.uint8
    assert np.array_equal(np.asanyarray(nib.load(again).dataobj), labels)
    # changed values (e.g. after smoothing) stay float: nothing is silently rounded
    smoothed = loaded * 0.3
    assert nib.load(mt.io.save(smoothed, tmp_path / "s.nii.gz")).get_data_dtype() == np.float32


def test_save_with_an_explicit_dtype_checks_the_range(tmp_path):
    out = mt.io.save(
        np.full((3, 3, 3), 7.0), tmp_path / "a.nii.gz", affine=np.eye(4), dtype=np.uint8
    )
    assert nib.load(out).get_data_dtype() == np.uint8
    with pytest.raises(NiftiError, match=r"as uint8: values .*do not fit"):
        mt.io.save(
            np.full((3, 3, 3), 300.0), tmp_path / "b.nii.gz", affine=np.eye(4), dtype="uint8"
        )


@pytest.mark.parametrize("suffix", [".mgz", ".mgh"])
def test_freesurfer_mgh_volumes_load_with_their_ras_affine(tmp_path, suffix):
    data = ct_volume((8, 7, 5)).astype(np.float32)
    affine = make_affine()
    path = tmp_path / f"brain{suffix}"
    nib.save(nib.MGHImage(data, affine), path)
    image = mt.io.load(path)
    assert np.array_equal(image.numpy(), data)
    assert np.allclose(image.affine.numpy(), nib.load(path).affine)
    assert np.allclose(image.affine.numpy(), affine, atol=1e-4)
    assert mt.io.image_info(path).shape == (8, 7, 5)
    with pytest.raises(NiftiError, match=r"must end in \.nii or \.nii\.gz"):
        mt.io.save(image, tmp_path / f"out{suffix}")
