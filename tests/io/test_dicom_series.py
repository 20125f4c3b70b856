"""Loading DICOM series: ordering, geometry, intensities and every way a series can be wrong."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.errors import DicomError, GeometryWarning, MedTransferError, SeriesError
from tests.fixtures import ct_volume, edit_dicom, make_affine, world, write_series

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def test_shuffled_names_and_instance_numbers_give_the_right_volume(tmp_path):
    volume, affine = ct_volume(), make_affine(angles=(0.2, -0.1, 0.3))
    rng = np.random.default_rng(1)
    names = [f"IMG{n:05d}" for n in rng.permutation(volume.shape[2])]  # no .dcm suffix either
    instance_numbers = rng.permutation(volume.shape[2]) + 1  # unrelated to position
    write_series(tmp_path, volume, affine, file_names=names, instance_numbers=instance_numbers)

    image = mt.io.load(tmp_path)

    np.testing.assert_array_equal(image.numpy(), volume)
    np.testing.assert_allclose(image.affine.numpy(), affine, atol=1e-5)
    assert image.meta["spacing"] == pytest.approx((0.7, 0.8, 2.5), abs=1e-5)


def test_slices_stored_in_descending_position_are_reordered(tmp_path):
    """Positions decrease with file order: the volume runs along +normal, first slice lowest."""
    volume, affine = ct_volume(), make_affine()
    flipped = affine.copy()
    flipped[:3, 2] *= -1  # slice k is written at origin - k * step
    write_series(tmp_path, volume, flipped)

    image = mt.io.load(tmp_path)

    np.testing.assert_array_equal(image.numpy(), volume[:, :, ::-1])
    last = volume.shape[2] - 1
    np.testing.assert_allclose(
        world(image.affine.numpy(), (0, 0, 0)), world(flipped, (0, 0, last)), atol=1e-4
    )


def test_affine_maps_voxels_to_the_dicom_positions_in_ras(tmp_path):
    affine = make_affine(
        spacing=(0.5, 0.6, 3.0), angles=(0.4, 0.2, -0.5), origin=(-100.0, 50.0, 20.0)
    )
    files = write_series(tmp_path, affine=affine)
    image = mt.io.load(tmp_path)

    for k, path in enumerate(files):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ipp_lps = np.asarray(ds.ImagePositionPatient, float)
        row, col = (
            np.asarray(ds.ImageOrientationPatient[:3], float),
            np.asarray(ds.ImageOrientationPatient[3:], float),
        )
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        i, j = 3, 5  # column 3, row 5 of slice k, in LPS by the DICOM standard's formula
        expected_lps = ipp_lps + i * col_spacing * row + j * row_spacing * col
        expected_ras = LPS_TO_RAS[:3, :3] @ expected_lps
        np.testing.assert_allclose(world(image.affine.numpy(), (i, j, k)), expected_ras, atol=1e-4)


def test_affine_and_voxels_agree_with_simpleitk(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    volume, affine = ct_volume((20, 14, 7)), make_affine(angles=(0.1, 0.3, 0.0))
    write_series(tmp_path, volume, affine, instance_numbers=list(range(7, 0, -1)))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    reference = reader.Execute()

    image = mt.io.load(tmp_path)

    direction = np.asarray(reference.GetDirection()).reshape(3, 3) * np.asarray(
        reference.GetSpacing()
    )
    sitk_affine = np.eye(4)
    sitk_affine[:3, :3], sitk_affine[:3, 3] = direction, reference.GetOrigin()
    np.testing.assert_allclose(image.affine.numpy(), LPS_TO_RAS @ sitk_affine, atol=1e-4)
    np.testing.assert_array_equal(
        image.numpy(), sitk.GetArrayFromImage(reference).transpose(2, 1, 0)
    )


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, -1024.0), (0.5, -100.0), (2.0, 0.0)])
def test_rescale_slope_and_intercept_give_physical_values(tmp_path, slope, intercept):
    volume = np.round(ct_volume() / slope) * slope  # representable on the rescale grid
    write_series(tmp_path, volume, rescale_slope=slope, rescale_intercept=intercept)
    image = mt.io.load(tmp_path)
    assert image.dtype == mt.io.load(tmp_path).dtype
    np.testing.assert_allclose(image.numpy(), volume, atol=1e-4)
    assert str(image.dtype) == "torch.float32"


def test_rescale_can_differ_per_slice(tmp_path):
    volume = ct_volume()
    files = write_series(tmp_path, volume)
    ds = pydicom.dcmread(files[2])
    stored = ds.pixel_array.astype(np.int32)
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-2048"  # same HU, different stored values
    ds.PixelData = ((stored - 1024 + 2048) // 2).astype(np.uint16).tobytes()
    ds.save_as(files[2], enforce_file_format=True)
    expected = volume.copy()
    expected[:, :, 2] = (np.floor((volume[:, :, 2] + 2048) / 2) * 2) - 2048
    np.testing.assert_allclose(mt.io.load(tmp_path).numpy(), expected, atol=1e-4)


def test_monochrome1_is_inverted(tmp_path):
    volume = np.zeros((6, 5, 3), np.float32)
    volume[0, 0, :] = 1000.0
    files = write_series(tmp_path, volume, rescale_intercept=0.0, modality="OT")
    for path in files:
        edit_dicom(path, PhotometricInterpretation="MONOCHROME1", BitsStored=12, HighBit=11)
    image = mt.io.load(tmp_path)
    assert image.meta["monochrome1_inverted"] is True
    assert float(image[0, 0, 0]) == 4095 - 1000  # bright stays brighter than the background
    assert float(image[1, 1, 1]) == 4095


def test_bits_stored_masks_garbage_high_bits(tmp_path):
    volume = np.full((4, 4, 2), 100.0, np.float32)
    files = write_series(tmp_path, volume, rescale_intercept=0.0, modality="OT")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = (ds.pixel_array.astype(np.uint16) | 0xF000).tobytes()  # overlay bits set
        ds.save_as(path, enforce_file_format=True)
    np.testing.assert_array_equal(mt.io.load(tmp_path).numpy(), volume)


def test_two_series_in_one_folder_need_a_choice(tmp_path):
    write_series(tmp_path / "a", ct_volume((8, 8, 4)), series_description="arterial")
    write_series(tmp_path / "b", ct_volume((8, 8, 6), seed=1), series_description="venous")
    with pytest.raises(SeriesError) as info:
        mt.io.load(tmp_path)
    message = str(info.value)
    assert "2 image series" in message and "8x8x4" in message and "8x8x6" in message
    assert "arterial" not in message and "venous" not in message  # free text may hold names
    assert "series_uid" in message

    venous = next(s for s in mt.io.list_series(tmp_path) if s.description == "venous")
    assert mt.io.load(tmp_path, series_uid=venous.uid).shape[2] == 6
    assert mt.io.load(tmp_path, select="largest").shape[2] == 6
    with pytest.raises(SeriesError, match="not in"):
        mt.io.load(tmp_path, series_uid="1.2.3.4")


def test_missing_slice_is_an_error_naming_the_gap(tmp_path):
    files = write_series(tmp_path, ct_volume((8, 8, 8)))
    files[4].unlink()
    with pytest.raises(SeriesError, match="missing slices") as info:
        mt.io.load(tmp_path)
    assert "slice_0003.dcm" in str(info.value) and "slice_0005.dcm" in str(info.value)


def test_missing_slice_can_be_resampled_on_request(tmp_path):
    volume = np.zeros((4, 4, 8), np.float32) + np.arange(8, dtype=np.float32) * 10
    files = write_series(tmp_path, volume, rescale_intercept=-100.0)
    files[4].unlink()
    with pytest.warns(GeometryWarning, match="missing slices"):
        image = mt.io.load(tmp_path, nonuniform="resample")
    assert image.shape == (4, 4, 8)
    np.testing.assert_allclose(image.numpy()[0, 0], np.arange(8) * 10.0, atol=1e-4)  # linear ramp
    assert image.meta["spacing"][2] == pytest.approx(2.5, abs=1e-4)


def test_non_uniform_spacing_is_an_error(tmp_path):
    files = write_series(tmp_path, ct_volume((6, 6, 5)), affine=make_affine(spacing=(1, 1, 2.0)))
    ds = pydicom.dcmread(files[2])
    position = [float(v) for v in ds.ImagePositionPatient]
    edit_dicom(files[2], ImagePositionPatient=[position[0], position[1], position[2] + 0.6])
    with pytest.raises(SeriesError, match="non-uniform slice spacing"):
        mt.io.load(tmp_path)


def test_duplicate_positions_from_different_instances_are_an_error(tmp_path):
    files = write_series(
        tmp_path / "echo1", ct_volume((6, 6, 4)), uid_seed="e1", series_uid="1.2.3.9"
    )
    second = write_series(
        tmp_path / "echo2", ct_volume((6, 6, 4), seed=5), uid_seed="e2", series_uid="1.2.3.9"
    )
    assert len(files) == len(second)
    with pytest.raises(SeriesError, match="several volumes"):
        mt.io.load(tmp_path)


def test_exact_duplicate_files_are_dropped(tmp_path):
    volume = ct_volume((6, 6, 4))
    files = write_series(tmp_path, volume)
    shutil.copy(files[1], tmp_path / "copy_of_slice1.dcm")
    image = mt.io.load(tmp_path)
    np.testing.assert_array_equal(image.numpy(), volume)
    assert any("duplicated" in note for note in image.meta["geometry_notes"])


def test_mixed_sizes_and_orientations_are_errors(tmp_path):
    write_series(tmp_path / "a", ct_volume((8, 8, 3)), series_uid="1.2.3.10", uid_seed="a")
    write_series(
        tmp_path / "b",
        ct_volume((6, 8, 1)),
        series_uid="1.2.3.10",
        uid_seed="b",
        affine=make_affine(origin=(10.0, -20.0, 60.0)),
    )
    with pytest.raises(SeriesError, match="mixes image sizes"):
        mt.io.load(tmp_path)

    other = tmp_path.parent / (tmp_path.name + "_orient")
    write_series(other / "a", ct_volume((8, 8, 3)), series_uid="1.2.3.11", uid_seed="c")
    write_series(
        other / "b",
        ct_volume((8, 8, 1)),
        series_uid="1.2.3.11",
        uid_seed="d",
        affine=make_affine(angles=(0.0, 0.5, 0.0), origin=(10.0, -20.0, 80.0)),
    )
    with pytest.raises(SeriesError, match="mixes slice orientations"):
        mt.io.load(other)


def test_gantry_tilt_warns_and_keeps_exact_geometry(tmp_path):
    tilted = make_affine(spacing=(1.0, 1.0, 2.0))
    tilted[:3, 2] = [0.0, 0.7, 2.0]  # each slice shifted along y: a sheared stack
    files = write_series(tmp_path, ct_volume((6, 6, 5)), tilted)
    with pytest.warns(GeometryWarning, match="gantry tilt"):
        image = mt.io.load(tmp_path)
    np.testing.assert_allclose(image.affine.numpy(), tilted, atol=1e-4)
    assert image.meta["gantry_tilt_degrees"] == pytest.approx(
        np.degrees(np.arctan(0.7 / 2.0)), abs=0.01
    )
    assert len(files) == 5
    with pytest.raises(SeriesError, match="gantry tilt"):
        mt.io.load(tmp_path, gantry_tilt="error")


def test_truncated_slice_in_a_series_is_reported_and_nothing_loads(tmp_path):
    files = write_series(tmp_path, ct_volume((16, 16, 4)))
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 100])
    with pytest.raises(DicomError, match="truncated") as info:
        mt.io.load(tmp_path)
    assert "slice_0002.dcm" in str(info.value)


def test_empty_folder_and_unrelated_files_are_clear_errors(tmp_path):
    with pytest.raises(DicomError, match="empty"):
        mt.io.load(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DicomError, match="No DICOM files") as info:
        mt.io.load(tmp_path)
    assert "2 file(s) checked" in str(info.value)
    with pytest.raises(MedTransferError, match="Not found"):
        mt.io.load(tmp_path / "missing")


def test_folder_of_non_image_dicom_says_so(tmp_path):
    from tests.fixtures import PYDICOM_TEST_FILES

    shutil.copy(PYDICOM_TEST_FILES / "rtstruct.dcm", tmp_path / "rs.dcm")
    with pytest.raises(SeriesError, match="without image pixel data.*RTSTRUCT"):
        mt.io.load(tmp_path)


def test_structure_set_next_to_the_images_does_not_block_loading(tmp_path):
    from tests.fixtures import PYDICOM_TEST_FILES

    volume = ct_volume((6, 6, 3))
    write_series(tmp_path, volume)
    shutil.copy(PYDICOM_TEST_FILES / "rtstruct.dcm", tmp_path / "rs.dcm")
    np.testing.assert_array_equal(mt.io.load(tmp_path).numpy(), volume)


@pytest.mark.parametrize(
    "syntax",
    [
        pydicom.uid.RLELossless,
        pydicom.uid.JPEGLSLossless,
        pydicom.uid.JPEG2000Lossless,
    ],
    ids=["rle", "jpeg-ls", "jpeg2000"],
)
def test_compressed_series_loads_exactly(tmp_path, syntax):
    volume = ct_volume((64, 48, 4))  # openjpeg needs more than a few pixels per resolution level
    files = write_series(tmp_path, volume, make_affine(angles=(0.0, 0.1, 0.0)))
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path, enforce_file_format=True)
    image = mt.io.load(tmp_path)
    assert image.meta["transfer_syntax"] == syntax
    np.testing.assert_array_equal(image.numpy(), volume)
