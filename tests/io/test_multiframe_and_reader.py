"""Enhanced multi-frame files and the MONAI reader adapter."""

from __future__ import annotations

import numpy as np
import pytest

import medtransfer as mt
from tests.fixtures import ct_volume, enhanced_ct, make_affine, write_series


def test_enhanced_multiframe_loads_like_the_series_it_came_from(tmp_path):
    pytest.importorskip("highdicom")
    volume, affine = ct_volume((12, 10, 5)), make_affine(angles=(0.1, 0.0, 0.2))
    files = write_series(tmp_path / "series", volume, affine)
    enhanced = enhanced_ct(files[::-1])  # frames stored in reverse order
    enhanced.save_as(tmp_path / "enhanced.dcm")

    image = mt.io.load(tmp_path / "enhanced.dcm")

    np.testing.assert_array_equal(image.numpy(), volume)
    np.testing.assert_allclose(image.affine.numpy(), affine, atol=1e-4)


def test_single_frame_file_is_2d_with_thickness_in_the_affine(tmp_path):
    files = write_series(tmp_path, ct_volume((8, 6, 3)), make_affine(spacing=(0.5, 0.5, 3.0)))
    image = mt.io.load(files[1])
    assert image.shape == (8, 6)
    assert image.meta["spacing"] == pytest.approx((0.5, 0.5))
    assert np.linalg.norm(image.affine.numpy()[:3, 2]) == pytest.approx(3.0)


def test_monai_loadimaged_with_our_reader_matches_load(tmp_path):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd

    volume = ct_volume((10, 8, 4))
    write_series(tmp_path / "dicom", volume, make_affine())
    mt.io.save(mt.io.load(tmp_path / "dicom"), tmp_path / "ct.nii.gz")
    pipeline = Compose(
        [
            LoadImaged(keys=["a", "b"], reader=mt.io.MedTransferReader()),
            EnsureChannelFirstd(keys=["a", "b"]),
            Orientationd(keys=["a", "b"], axcodes="RAS"),
        ]
    )
    out = pipeline({"a": str(tmp_path / "dicom"), "b": str(tmp_path / "ct.nii.gz")})
    assert out["a"].shape == (1, 10, 8, 4)
    np.testing.assert_allclose(out["a"].affine.numpy(), out["b"].affine.numpy(), atol=1e-5)
    np.testing.assert_array_equal(out["a"].numpy(), out["b"].numpy())
    # LPS-stored data reoriented to RAS: the first axis is flipped
    np.testing.assert_array_equal(out["a"].numpy()[0], volume[::-1, ::-1, :])


def test_reader_stacks_several_files_as_channels(tmp_path):
    write_series(tmp_path / "t1", ct_volume((6, 6, 3)), uid_seed="t1")
    write_series(tmp_path / "t2", ct_volume((6, 6, 3), seed=2), uid_seed="t2")
    reader = mt.io.MedTransferReader()
    data, meta = reader.get_data(reader.read([tmp_path / "t1", tmp_path / "t2"]))
    assert data.shape == (2, 6, 6, 3) and meta["original_channel_dim"] == 0
    assert reader.verify_suffix("x.nii.gz") and reader.verify_suffix(["a.dcm", "b.nii"])
    assert reader.verify_suffix("photo.png") and not reader.verify_suffix("photo.gif")
