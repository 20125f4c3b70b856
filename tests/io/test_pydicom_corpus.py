"""pydicom's bundled test files: each loads or raises a MedTransferError, and values are right."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.errors import DicomError, MedTransferError
from tests.fixtures import PYDICOM_TEST_FILES

CORPUS = sorted(p for p in PYDICOM_TEST_FILES.iterdir() if p.is_file())


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_corpus_file_loads_or_raises_a_medtransfer_error(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = mt.io.load(path)
        except MedTransferError as err:
            assert path.name in str(err)  # the message names the file
            return
    assert image.ndim in (2, 3, 4)
    assert np.isfinite(image.affine.numpy()).all()


def test_ct_small_is_in_hounsfield_units_with_its_geometry():
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / "CT_small.dcm")
    image = mt.io.load(PYDICOM_TEST_FILES / "CT_small.dcm")
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.numpy(), expected.T)
    position = np.asarray(ds.ImagePositionPatient, float)
    np.testing.assert_allclose(
        image.affine.numpy()[:3, 3], [-position[0], -position[1], position[2]]
    )
    assert image.meta["spacing"][:2] == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert image.meta["modality"] == "CT"


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
    ],
)
def test_every_encoding_of_mr_small_decodes_to_the_same_image(name):
    reference = mt.io.load(PYDICOM_TEST_FILES / "MR_small.dcm").numpy()
    np.testing.assert_array_equal(mt.io.load(PYDICOM_TEST_FILES / name).numpy(), reference)


def test_pixel_data_longer_than_its_header_declares_is_refused():
    """MR_small_padded.dcm holds 128 bytes after its 64 x 64 x 16-bit image: exactly one row, so
    they cannot be told apart from a header whose Rows was damaged (64 -> 63). Refused, not
    guessed; the message gives both sizes."""
    with pytest.raises(DicomError, match="MR_small_padded.dcm.* 8192 bytes.* 8320 bytes"):
        mt.io.load(PYDICOM_TEST_FILES / "MR_small_padded.dcm")


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_jpeg_dcmtk.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "SC_rgb_jls_lossy_line.dcm",
        "SC_rgb_dcmtk_+eb+cy+np.dcm",
    ],
)
def test_compressed_colour_images_decode_close_to_the_uncompressed_one(name):
    reference = mt.io.load(PYDICOM_TEST_FILES / "SC_rgb_rle.dcm").numpy()
    image = mt.io.load(PYDICOM_TEST_FILES / name)
    assert image.meta["original_channel_dim"] == -1
    assert np.abs(image.numpy() - reference).mean() < 3.0  # lossy codecs; YBR misread would be ~100


def test_multi_frame_dose_grid_uses_frame_offsets():
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / "rtdose.dcm")
    image = mt.io.load(PYDICOM_TEST_FILES / "rtdose.dcm")
    offsets = np.asarray(ds.GridFrameOffsetVector, float)
    assert image.shape == (ds.Columns, ds.Rows, int(ds.NumberOfFrames))
    assert image.meta["spacing"][2] == pytest.approx(abs(offsets[1] - offsets[0]))
    np.testing.assert_allclose(
        image.numpy()[..., 0], ds.pixel_array[0].T * float(ds.DoseGridScaling), rtol=1e-6
    )


def test_undecodable_syntax_names_it():
    with pytest.raises(DicomError, match="JPEG Extended"):
        mt.io.load(PYDICOM_TEST_FILES / "JPEG-lossy.dcm")


def test_truncated_file_is_reported():
    with pytest.raises(DicomError, match="truncated"):
        mt.io.load(PYDICOM_TEST_FILES / "MR_truncated.dcm")
