"""The memory budget and declared-size checks that guard every reader before it allocates."""

from __future__ import annotations

import pytest

from medtransfer.errors import DicomError, MedTransferError, NiftiError
from medtransfer.io.limits import (
    BUDGET_ENV,
    check_declared_bytes,
    check_memory_budget,
    memory_budget,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1000", 1000), ("2K", 2048), ("1.5G", 3 * 1024**3 // 2), ("8gb", 8 * 1024**3)],
)
def test_budget_is_read_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(BUDGET_ENV, value)
    assert memory_budget() == expected


def test_default_budget_is_half_the_physical_memory(monkeypatch):
    import os

    monkeypatch.delenv(BUDGET_ENV, raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_budget() == physical // 2


@pytest.mark.parametrize("value", ["lots", "-5G", "0"])
def test_a_bad_budget_is_our_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(BUDGET_ENV, value)
    with pytest.raises(MedTransferError, match=BUDGET_ENV):
        memory_budget()


def test_over_budget_raises_the_readers_error_naming_file_and_fix(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1M")
    check_memory_budget(1024**2, path="ok.nii", what="volume", error=NiftiError)
    with pytest.raises(NiftiError, match=r"huge\.nii.*1\.0 MiB.*MEDTRANSFER_MAX_VOLUME_BYTES"):
        check_memory_budget(1024**2 + 1, path="huge.nii", what="volume", error=NiftiError)


def test_declared_bytes_must_fit_in_the_file():
    check_declared_bytes(100, 100, path="a.dcm", what="pixel data", error=DicomError)
    with pytest.raises(DicomError, match=r"a\.dcm.*truncated"):
        check_declared_bytes(101, 100, path="a.dcm", what="pixel data", error=DicomError)
