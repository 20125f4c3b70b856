"""DICOM DX/CR/MG single images: inversion, VOI LUT / window, Modality LUT, spacing, PNG twins."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

import medtransfer as mt
from medtransfer.errors import ConfigError, DicomError
from tests.fixtures import PYDICOM_TEST_FILES
from tests.io.radiograph_files import lut_item, radiograph_pixels, write_radiograph

CR_FILES = sorted((PYDICOM_TEST_FILES / "dicomdirtests" / "77654033").glob("CR*/*"))


def test_a_png_export_of_a_dx_pixel_array_loads_to_the_same_array(tmp_path):
    pixels = radiograph_pixels(rows=7, columns=4)
    dicom = mt.io.load(write_radiograph(tmp_path / "dx.dcm", pixels))
    Image.fromarray(pixels).save(tmp_path / "dx.png")
    png = mt.io.load(tmp_path / "dx.png")
    assert tuple(dicom.shape) == tuple(png.shape) == (4, 7)
    np.testing.assert_array_equal(dicom.numpy(), png.numpy())
    np.testing.assert_array_equal(dicom.affine.numpy(), png.affine.numpy())  # no spacing: 1 mm
    assert dicom.meta["spacing_known"] is png.meta["spacing_known"] is False


def test_monochrome1_is_inverted_over_the_stored_range(tmp_path):
    pixels = np.array([[0, 1], [4000, 4095]], np.uint16)
    image = mt.io.load(write_radiograph(tmp_path / "a.dcm", pixels, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(image.numpy(), (4095 - pixels).T)
    assert image.meta["inverted"] is True and image.meta["voi"] == "none in the file"


@pytest.mark.parametrize(
    ("photometric", "shape", "inverted"),
    [
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", "INVERSE", True),  # the DX IOD's pair: one inversion, not two
        ("MONOCHROME2", "IDENTITY", False),
    ],
)
def test_presentation_lut_shape_inverse_inverts_once(tmp_path, photometric, shape, inverted):
    pixels = np.array([[10, 20], [30, 4000]], np.uint16)
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, photometric=photometric, PresentationLUTShape=shape
    )
    image = mt.io.load(path)
    expected = 4095 - pixels if inverted else pixels
    np.testing.assert_array_equal(image.numpy(), expected.T)
    assert image.meta["inverted"] is inverted


def test_window_is_applied_to_radiographs_by_default_and_recorded(tmp_path):
    pixels = np.array([[0, 100, 150], [200, 250, 4095]], np.uint16)
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=300.5,
        WindowWidth=201,
    )  # fmt: skip
    image = mt.io.load(path)
    # physical = 2 * stored - 100; LINEAR: (x - 300) / 200 + 0.5 clipped, onto -100..8090
    physical = 2.0 * pixels - 100
    fraction = np.clip((physical - 300.0) / 200.0 + 0.5, 0, 1)
    np.testing.assert_allclose(image.numpy(), (fraction * 8190 - 100).T, atol=1e-3)
    assert image.meta["voi"] == "window center 300.5, width 201 (LINEAR)"
    assert image.meta["voi_range"] == (-100.0, 8090.0)
    raw = mt.io.load(path, voi="none")
    np.testing.assert_array_equal(raw.numpy(), physical.T)
    assert raw.meta["voi"] == "not applied (voi='none')"


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_other_voi_functions_follow_the_standard(tmp_path, function):
    pixels = np.array([[0, 900, 1000], [1100, 2000, 4095]], np.uint16)
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, WindowCenter=1000, WindowWidth=400, VOILUTFunction=function
    )
    x = pixels.astype(np.float64)
    if function == "SIGMOID":
        expected = 4095 / (1 + np.exp(-4 * (x - 1000) / 400))
    else:
        expected = np.clip((x - 1000) / 400 + 0.5, 0, 1) * 4095
    np.testing.assert_allclose(mt.io.load(path).numpy(), expected.T, rtol=1e-6, atol=1e-3)


def test_windowing_matches_pydicom_then_inverts_for_monochrome1(tmp_path):
    pixels = radiograph_pixels(rows=8, columns=9)
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, photometric="MONOCHROME1", RescaleSlope=0.5,
        RescaleIntercept=10, WindowCenter=[500, 900], WindowWidth=[600, 100],
    )  # fmt: skip
    ds = pydicom.dcmread(path)
    windowed = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)  # first window
    image = mt.io.load(path)
    low, high = image.meta["voi_range"]
    assert (low, high) == (10.0, 4095 * 0.5 + 10)
    np.testing.assert_allclose(image.numpy(), (low + high - windowed).T, atol=1e-3)


def test_voi_lut_sequence_wins_over_the_window(tmp_path):
    pixels = np.array([[0, 9, 10], [11, 13, 4095]], np.uint16)
    table = [100, 200, 300, 400]  # maps stored 10..13; below: first entry, above: last
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, WindowCenter=5, WindowWidth=10,
        VOILUTSequence=lut_item(10, table, 12, "NORMAL"),
    )  # fmt: skip
    image = mt.io.load(path)
    expected = np.array([[100, 100, 100], [200, 400, 400]], float)
    np.testing.assert_array_equal(image.numpy(), expected.T)
    assert image.meta["voi"] == "VOI LUT (4 entries, 12 bits) 'NORMAL'"
    assert image.meta["voi_range"] == (0.0, 4095.0)


def test_an_8_bit_voi_lut_longer_than_256_entries_is_not_wrapped(tmp_path):
    pixels = np.array([[0, 255], [256, 999]], np.uint16)
    table = [i // 4 for i in range(1000)]  # 8-bit entries, 1000 of them
    path = write_radiograph(tmp_path / "a.dcm", pixels, VOILUTSequence=lut_item(0, table, 8))
    np.testing.assert_array_equal(mt.io.load(path).numpy(), np.array([[0, 63], [64, 249]]).T)


def test_modality_lut_sequence_replaces_the_rescale(tmp_path):
    pixels = np.array([[0, 1], [2, 3]], np.uint16)
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, ModalityLUTSequence=lut_item(0, [7, 70, 700, 7000], 16)
    )
    image = mt.io.load(path, voi="none")
    np.testing.assert_array_equal(image.numpy(), np.array([[7, 70], [700, 7000]]).T)
    assert image.meta["modality_lut"] == "Modality LUT (4 entries, 16 bits)"


def test_voi_of_ct_or_mr_is_left_alone_unless_always(tmp_path):
    pixels = np.array([[0, 500], [1000, 2000]], np.uint16)
    path = write_radiograph(
        tmp_path / "a.dcm", pixels, modality="CT", WindowCenter=1000, WindowWidth=1001
    )
    image = mt.io.load(path)
    np.testing.assert_array_equal(image.numpy(), pixels.T)
    assert image.meta["voi"].startswith("not applied: modality CT")
    assert mt.io.load(path, voi="always").meta["voi"].startswith("window center 1000")
    mr = mt.io.load(PYDICOM_TEST_FILES / "MR_small.dcm")
    assert mr.meta["voi"].startswith("not applied: modality MR")


def test_imager_pixel_spacing_is_used_and_noted_pixel_spacing_wins(tmp_path):
    pixels = radiograph_pixels()
    imager = mt.io.load(
        write_radiograph(tmp_path / "a.dcm", pixels, ImagerPixelSpacing=[0.15, 0.1])
    )
    assert imager.meta["spacing"] == (0.1, 0.15)  # (x along columns, y along rows)
    assert imager.meta["spacing_source"] == "ImagerPixelSpacing"
    assert imager.meta["spacing_known"] is True
    assert any("detector plane" in note for note in imager.meta["geometry_notes"])
    both = mt.io.load(
        write_radiograph(
            tmp_path / "b.dcm", pixels, ImagerPixelSpacing=[0.15, 0.15], PixelSpacing=[0.12, 0.12]
        )
    )
    assert both.meta["spacing"] == (0.12, 0.12) and both.meta["spacing_source"] == "PixelSpacing"
    none = mt.io.load(write_radiograph(tmp_path / "c.dcm", pixels))
    assert none.meta["spacing_known"] is False and none.meta["spacing_source"] == "none"
    info = mt.io.image_info(tmp_path / "a.dcm")
    assert info.shape == tuple(imager.shape) and info.spacing[:2] == imager.meta["spacing"]


def test_impossible_windows_and_luts_name_the_file_and_the_way_out(tmp_path):
    pixels = radiograph_pixels()
    for name, attributes in [
        ("zero.dcm", {"WindowCenter": 100, "WindowWidth": 0}),
        ("function.dcm", {"WindowCenter": 100, "WindowWidth": 50, "VOILUTFunction": "CUBIC"}),
        ("short.dcm", {"VOILUTSequence": lut_item(0, [1, 2], 12)}),
    ]:
        if name == "short.dcm":
            attributes["VOILUTSequence"][0].LUTDescriptor = [300, 0, 12]
        path = write_radiograph(tmp_path / name, pixels, **attributes)
        with pytest.raises(DicomError, match=f"{name}.*voi='none'"):
            mt.io.load(path)
        assert mt.io.load(path, voi="none").shape == (5, 6)
    with pytest.raises(ConfigError, match="voi="):
        mt.io.load(tmp_path / "zero.dcm", voi="window")


@pytest.mark.parametrize("path", CR_FILES, ids=lambda p: p.parent.name)
def test_pydicom_cr_files_window_and_invert_like_pydicom(path):
    ds = pydicom.dcmread(path)  # MONOCHROME1, rescale 0.684/200, window 1600/2800, 0.1 mm imager
    assert ds.PhotometricInterpretation == "MONOCHROME1" and "PixelSpacing" not in ds
    image = mt.io.load(path)
    windowed = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    low, high = image.meta["voi_range"]
    np.testing.assert_allclose(image.numpy(), (low + high - windowed).T, rtol=1e-6, atol=1e-3)
    assert image.meta["spacing"] == (0.1, 0.1) and image.meta["inverted"] is True
    assert image.meta["spacing_source"] == "ImagerPixelSpacing"
    folder = mt.io.load(path.parent)  # a folder holding one radiograph loads it
    np.testing.assert_array_equal(folder.numpy(), image.numpy())
