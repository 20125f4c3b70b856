"""Damaged DICOM never becomes a wrong volume: headers that disagree with the pixel bytes,
unreadable members of a series, impossible geometry or scaling, and raw parser exceptions."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError, DataWarning, DicomError, MedTransferWarning
from tests.fixtures import ct_volume, edit_dicom, enhanced_ct, write_series

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")


def _series(tmp_path, shape=(16, 12, 4)):
    volume = ct_volume(shape)
    return volume, write_series(tmp_path / "series", volume)


def _element_offset(data: bytes, tag: tuple[int, int], vr: bytes) -> int:
    """Byte offset of an explicit-VR little-endian element (tag, VR) in a file's bytes."""
    marker = tag[0].to_bytes(2, "little") + tag[1].to_bytes(2, "little") + vr
    offset = data.find(marker)
    assert offset > 0, f"{tag} not found"
    return offset


# 1. A header that disagrees with the pixel bytes ---------------------------------------------


@pytest.mark.parametrize(
    ("edits", "declared", "actual"),
    [
        ({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, 192, 384),
        ({"Columns": 14}, 336, 384),
        ({"Rows": 10}, 320, 384),
    ],
    ids=["bits-allocated-8-on-16-bit-data", "fewer-columns", "fewer-rows"],
)
@pytest.mark.parametrize("target", ["folder", "file"])
def test_header_smaller_than_the_pixel_data_is_an_error(tmp_path, edits, declared, actual, target):
    _, files = _series(tmp_path)
    for path in files:
        edit_dicom(path, **edits)
    with pytest.raises(DicomError) as info:
        mt.io.load(tmp_path / "series" if target == "folder" else files[0])
    message = str(info.value)
    assert "slice_000" in message and str(declared) in message and str(actual) in message


def test_one_pad_byte_after_odd_length_pixel_data_is_accepted(tmp_path):
    _, files = _series(tmp_path)
    ds = pydicom.dcmread(files[0])
    values = np.arange(15, dtype=np.uint8).reshape(3, 5)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 5, 8, 8, 7
    ds.PixelRepresentation, ds.RescaleSlope, ds.RescaleIntercept = 0, 1, 0
    ds.PixelData = values.tobytes()  # 15 bytes: written with one pad byte
    ds.save_as(files[0], enforce_file_format=True)
    assert len(pydicom.dcmread(files[0]).PixelData) == 16
    np.testing.assert_array_equal(mt.io.load(files[0]).numpy(), values.T)


def _compressed_slice(tmp_path, syntax):
    files = write_series(tmp_path, ct_volume((48, 64, 1)))
    ds = pydicom.dcmread(files[0])
    ds.compress(syntax)
    ds.save_as(files[0], enforce_file_format=True)
    return files[0]


@pytest.mark.parametrize(
    "edits", [{"Rows": 60}, {"Rows": 70}, {"Columns": 40}], ids=["rows-", "rows+", "columns-"]
)
@pytest.mark.parametrize(
    "syntax", [pydicom.uid.RLELossless, pydicom.uid.JPEG2000Lossless], ids=["rle", "jpeg2000"]
)
def test_compressed_frame_that_disagrees_with_the_header_is_an_error(tmp_path, edits, syntax):
    path = _compressed_slice(tmp_path, syntax)
    edit_dicom(path, **edits)
    with pytest.raises(DicomError, match="slice_0000.dcm"):
        mt.io.load(path)


def test_enhanced_file_whose_rows_disagree_with_its_pixel_data_is_an_error(tmp_path):
    pytest.importorskip("highdicom")
    enhanced = enhanced_ct(write_series(tmp_path / "series", ct_volume((12, 10, 4))))
    enhanced.Rows = 8  # the pixel data still holds 10 rows per frame
    enhanced.save_as(tmp_path / "enhanced.dcm")
    with pytest.raises(DicomError, match="enhanced.dcm"):
        mt.io.load(tmp_path / "enhanced.dcm")


# 2. Unreadable members of a series ----------------------------------------------------------

_DAMAGES = {
    "zero-bytes": lambda data: b"",
    "cut-before-marker": lambda data: data[:100],
    "cut-in-header": lambda data: data[:600],
    "cut-at-pixel-data": lambda data: data[: _element_offset(data, (0x7FE0, 0x0010), b"OW")],
}


@pytest.mark.parametrize("damage", list(_DAMAGES), ids=list(_DAMAGES))
@pytest.mark.parametrize("which", [0, -1], ids=["first", "last"])
def test_unreadable_first_or_last_slice_is_an_error(tmp_path, damage, which):
    _, files = _series(tmp_path)
    files[which].write_bytes(_DAMAGES[damage](files[which].read_bytes()))
    with pytest.raises(DicomError) as info:
        mt.io.load(tmp_path / "series")
    assert files[which].name in str(info.value)
    assert "on_unreadable" in str(info.value)  # says how to go on without it


def test_unreadable_slice_can_be_skipped_with_a_warning_naming_it(tmp_path):
    volume, files = _series(tmp_path)
    files[0].write_bytes(b"")
    with pytest.warns(DataWarning, match="slice_0000.dcm"):
        image = mt.io.load(tmp_path / "series", on_unreadable="warn")
    np.testing.assert_array_equal(image.numpy(), volume[:, :, 1:])
    reader = mt.io.MedTransferReader(on_unreadable="warn")
    with pytest.warns(DataWarning, match="slice_0000.dcm"):
        data, _ = reader.get_data(reader.read(tmp_path / "series"))
    np.testing.assert_array_equal(data, volume[:, :, 1:])
    with pytest.raises(ConfigError, match="on_unreadable"):
        mt.io.load(tmp_path / "series", on_unreadable="ignore")


def test_list_series_names_every_kind_of_unreadable_file(tmp_path):
    _, files = _series(tmp_path)
    files[0].write_bytes(b"")
    files[-1].write_bytes(files[-1].read_bytes()[:600])
    with pytest.warns(MedTransferWarning) as caught:
        series = mt.io.list_series(tmp_path)
    message = " ".join(str(w.message) for w in caught)
    assert "slice_0000.dcm" in message and files[-1].name in message
    assert series[0].n_files == len(files) - 2


def test_files_that_are_not_members_do_not_block_loading(tmp_path):
    volume, files = _series(tmp_path)
    (tmp_path / "series" / "README").write_text("exported by the PACS\n")
    (tmp_path / "series" / "notes.txt").write_text("")
    (tmp_path / "series" / "DICOMDIR").write_bytes(b"")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "placeholder.dcm").write_bytes(b"")  # not next to the series
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        np.testing.assert_array_equal(mt.io.load(tmp_path).numpy(), volume)


def test_truncated_file_of_another_series_does_not_block_loading(tmp_path):
    volume, _ = _series(tmp_path)
    other = write_series(tmp_path / "other", ct_volume((8, 8, 3)), series_description="other")
    other[1].write_bytes(other[1].read_bytes()[:-40])  # its header still names its series
    with pytest.warns(DataWarning, match="other/slice_0001.dcm"):
        uid = next(s.uid for s in mt.io.list_series(tmp_path) if s.description != "other")
    np.testing.assert_array_equal(mt.io.load(tmp_path, series_uid=uid).numpy(), volume)


def test_truncated_file_naming_the_series_is_a_member_wherever_it_is(tmp_path):
    _, files = _series(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "IM0001"  # the file's damaged header still names the series
    moved.write_bytes(files[-1].read_bytes()[:-40])
    files[-1].unlink()
    with pytest.raises(DicomError, match="elsewhere/IM0001"):
        mt.io.load(tmp_path)


# 3. Impossible geometry and scaling ---------------------------------------------------------

_IMPOSSIBLE = {
    "pixel-spacing-0": ("PixelSpacing", [0, 0.8]),
    "pixel-spacing-negative": ("PixelSpacing", [0.7, -0.8]),
    "pixel-spacing-nan": ("PixelSpacing", ["nan", 0.8]),
    "slope-0": ("RescaleSlope", 0),
    "slope-nan": ("RescaleSlope", "nan"),
    "slope-inf": ("RescaleSlope", "inf"),
    "intercept-nan": ("RescaleIntercept", "nan"),
    "position-nan": ("ImagePositionPatient", [0, "nan", 0]),
    "position-inf": ("ImagePositionPatient", ["inf", 0, 0]),
    "orientation-nan": ("ImageOrientationPatient", [1, 0, 0, 0, "nan", 0]),
    "orientation-zero-vector": ("ImageOrientationPatient", [0, 0, 0, 0, 1, 0]),
}


@pytest.mark.parametrize("case", list(_IMPOSSIBLE), ids=list(_IMPOSSIBLE))
@pytest.mark.parametrize("target", ["folder", "file"])
def test_impossible_geometry_or_scaling_is_an_error_naming_file_and_field(tmp_path, case, target):
    field, value = _IMPOSSIBLE[case]
    _, files = _series(tmp_path)
    for path in files:
        edit_dicom(path, **{field: value})
    with pytest.raises(DicomError) as info:
        mt.io.load(tmp_path / "series" if target == "folder" else files[0])
    assert field in str(info.value) and "slice_000" in str(info.value)


def test_impossible_geometry_is_a_problem_in_list_series(tmp_path):
    _, files = _series(tmp_path)
    for path in files:
        edit_dicom(path, PixelSpacing=[0, 0.8])
    info = mt.io.list_series(tmp_path)[0]
    assert any("PixelSpacing" in p for p in info.problems)


# 4. Raw exceptions from damaged files --------------------------------------------------------


def _unknown_vr(data: bytes) -> bytes:
    offset = _element_offset(data, (0x0018, 0x0050), b"DS")  # SliceThickness
    return data[: offset + 4] + b"D\xab" + data[offset + 6 :]


def _cut_in_rows_value(data: bytes) -> bytes:
    return data[: _element_offset(data, (0x0028, 0x0010), b"US") + 9]


def _cut_in_pixel_length(data: bytes) -> bytes:
    return data[: _element_offset(data, (0x7FE0, 0x0010), b"OW") + 10]


@pytest.mark.parametrize(
    "damage",
    [_unknown_vr, _cut_in_rows_value, _cut_in_pixel_length],
    ids=["unknown-vr", "cut-in-a-us-value", "cut-in-a-32-bit-length"],
)
def test_damaged_file_is_a_dicom_error_and_the_scan_goes_on(tmp_path, damage):
    _, files = _series(tmp_path)
    write_series(tmp_path / "b", ct_volume((8, 8, 3)), series_description="b")
    files[1].write_bytes(damage(files[1].read_bytes()))
    for target in (files[1], tmp_path / "series"):
        with pytest.raises(DicomError, match="slice_0001.dcm"):
            mt.io.load(target)
    with pytest.warns(MedTransferWarning, match="slice_0001.dcm"):
        series = mt.io.list_series(tmp_path)
    assert sorted(s.n_files for s in series) == [3, 3]


def test_decoder_panic_is_a_dicom_error(tmp_path):
    path = _compressed_slice(tmp_path, pydicom.uid.RLELossless)
    edit_dicom(path, Columns=40)  # pylibjpeg-rle panics (a BaseException) on this
    with pytest.raises(DicomError, match="slice_0000.dcm"):
        mt.io.load(path)


def test_list_series_puts_unreadable_members_in_the_series_problems(tmp_path):
    import warnings

    from tests.fixtures import write_series

    files = write_series(tmp_path)
    files[-1].write_bytes(files[-1].read_bytes()[:600])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (info,) = mt.io.list_series(tmp_path)
    assert info.n_files == len(files) - 1
    assert any(
        "1 unreadable file may be slices of this series" in p and files[-1].name in p
        for p in info.problems
    )
