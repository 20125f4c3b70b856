"""save_dicom_seg never echoes a header value: errors, warnings and logs name the attribute only."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError, DicomError
from medtransfer.io.dicom_seg import save_dicom_seg
from tests.fixtures import edit_dicom

NAME = "Doe^Jane"


def _series(folder, **attributes):
    files = mt.io.write_dicom_series(
        np.zeros((8, 6, 3)), folder, affine=np.eye(4), patient_name=NAME
    )
    for path in files:
        edit_dicom(path, **attributes)
    mask = np.zeros((8, 6, 3), np.uint8)
    mask[2:5, 1:4, 1] = 1
    return mask


def _everything_said(capsys, caplog, caught, err) -> str:
    out = capsys.readouterr()
    return "\n".join([str(err), out.out, out.err, caplog.text, *(str(w.message) for w in caught)])


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PatientBirthDate", "19XX0101"),  # not a date
        ("PatientBirthDate", "1970010112345"),  # too long for DA
        ("StudyDate", "SMITH^JOHN"),  # a name typed into a date field
        ("PatientID", "MRN-" + "7" * 70),  # longer than LO allows
    ],
)
def test_malformed_header_value_is_named_by_keyword_never_shown(
    tmp_path, capsys, caplog, keyword, value
):
    mask = _series(tmp_path / "ct", **{keyword: value})  # pydicom itself warns while editing
    capsys.readouterr()
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DicomError) as info:
            save_dicom_seg(mask, tmp_path / "ct", tmp_path / "seg.dcm", labels={1: "liver"})
    said = _everything_said(capsys, caplog, caught, info.value)
    assert keyword in str(info.value) and "slice_0000.dcm" in str(info.value)
    for secret in (value, value[:4], value[-6:], NAME):
        assert secret not in said
    assert not (tmp_path / "seg.dcm").exists()


def test_invalid_user_argument_is_a_config_error_naming_it(tmp_path):
    mask = _series(tmp_path / "ct")
    with pytest.raises(ConfigError, match="content_label"):
        save_dicom_seg(
            mask, tmp_path / "ct", tmp_path / "seg.dcm", {1: "liver"}, content_label="my label"
        )


def test_valid_series_still_writes_and_copies_patient_attributes(tmp_path, capsys, caplog):
    import pydicom

    mask = _series(tmp_path / "ct", PatientBirthDate="19700101")
    out = save_dicom_seg(mask, tmp_path / "ct", tmp_path / "seg.dcm", labels={1: "liver"})
    seg = pydicom.dcmread(out)
    assert (seg.PatientBirthDate, str(seg.PatientName)) == ("19700101", NAME)
    captured = capsys.readouterr()
    assert NAME not in captured.out + captured.err + caplog.text


def test_failure_inside_highdicom_is_also_named_by_keyword(tmp_path, monkeypatch, capsys, caplog):
    """The second line of defence: highdicom fails on a value the early check let through."""
    from medtransfer.io import dicom_seg

    monkeypatch.setattr(dicom_seg, "check_copied_values", lambda *args: None)
    mask = _series(tmp_path / "ct", PatientBirthDate="19XX0101")
    capsys.readouterr()
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DicomError, match="PatientBirthDate") as info:
            save_dicom_seg(mask, tmp_path / "ct", tmp_path / "seg.dcm", labels={1: "liver"})
    said = _everything_said(capsys, caplog, caught, info.value)
    assert "19XX" not in said and NAME not in said
    assert "19XX" in str(info.value.__cause__)  # still there for a debugger
