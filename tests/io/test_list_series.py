"""list_series: one entry per series from headers only, problems reported, no PHI in the repr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import InputPathError, MedTransferWarning
from tests.fixtures import ct_volume, make_affine, write_series


def test_lists_each_series_with_geometry(tmp_path):
    write_series(
        tmp_path / "p1" / "ct",
        ct_volume((10, 8, 6)),
        make_affine(spacing=(0.7, 0.8, 2.5)),
        series_description="abdomen",
        series_number=3,
    )
    write_series(
        tmp_path / "p1" / "mr",
        ct_volume((12, 12, 4)),
        make_affine(spacing=(1, 1, 4)),
        modality="MR",
        series_description="t2",
        series_number=1,
    )

    series = mt.io.list_series(tmp_path)

    assert [s.description for s in series] == ["t2", "abdomen"]  # sorted by series number
    ct = series[1]
    assert (ct.modality, ct.n_files, ct.n_frames, ct.shape) == ("CT", 6, 6, (10, 8, 6))
    assert ct.spacing == pytest.approx((0.7, 0.8, 2.5), abs=1e-4)
    assert ct.orientation == "LPS" and ct.problems == () and ct.has_pixels
    assert len(ct.files) == 6 and ct.study_date == "20000101"


def test_repr_and_summary_carry_no_phi(tmp_path):
    write_series(
        tmp_path,
        ct_volume((6, 6, 3)),
        patient_name="Doe^Jane",
        patient_id="MRN123456",
        study_date="19800214",
    )
    info = mt.io.list_series(tmp_path)[0]
    text = repr(info) + info.summary()
    for secret in ("Doe", "Jane", "MRN123456", "19800214"):
        assert secret not in text


def test_problems_are_reported_not_raised(tmp_path):
    files = write_series(tmp_path, ct_volume((6, 6, 6)))
    files[3].unlink()
    info = mt.io.list_series(tmp_path)[0]
    assert info.n_files == 5
    assert any("missing slices" in p for p in info.problems)


def test_unreadable_dicom_files_are_warned_about(tmp_path):
    files = write_series(tmp_path, ct_volume((6, 6, 3)))
    files[0].write_bytes(files[0].read_bytes()[:140])  # marker intact, header cut
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = mt.io.list_series(tmp_path)
    assert any(
        issubclass(w.category, MedTransferWarning) and "slice_0000" in str(w.message)
        for w in caught
    )
    assert series[0].n_files == 2


def test_missing_or_wrong_kind_of_path(tmp_path):
    with pytest.raises(InputPathError):
        mt.io.list_series(tmp_path / "nope")
    (tmp_path / "file.dcm").write_bytes(b"x")
    with pytest.raises(InputPathError, match="folders"):
        mt.io.list_series(tmp_path / "file.dcm")


def test_empty_folder_lists_nothing(tmp_path):
    assert mt.io.list_series(tmp_path) == []


def test_scan_skips_pixels(tmp_path, monkeypatch):
    write_series(tmp_path, ct_volume((6, 6, 3)))
    calls = []
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: calls.append(a))
    mt.io.list_series(tmp_path)
    assert calls == []


def test_series_description_stays_out_of_repr_and_error_messages(tmp_path):
    from medtransfer.errors import SeriesError
    from tests.fixtures import write_series

    name = "Doe^Jane follow-up"
    write_series(tmp_path / "a", series_description=name)
    write_series(tmp_path / "b", series_description=name)
    infos = mt.io.list_series(tmp_path)
    assert all(info.description == name for info in infos)  # the API still has it
    assert all("Doe" not in repr(info) and "Doe" not in info.summary() for info in infos)
    with pytest.raises(SeriesError) as err:
        mt.io.load(tmp_path)
    assert "Doe" not in str(err.value) and "2 image series" in str(err.value)
    assert "Doe" not in repr(mt.io.load(tmp_path / "a").meta)
