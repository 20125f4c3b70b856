"""Files that are not files (FIFOs, devices) never hang a scan, and headers that declare huge
sizes never make the reader allocate or loop before it has checked them."""

from __future__ import annotations

import multiprocessing
import os
import sys
import tracemalloc

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.errors import DicomError, GeometryWarning, InputPathError
from tests.fixtures import ct_volume, edit_dicom, enhanced_ct, make_affine, write_series

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev are POSIX")


def _run(call, queue):
    try:
        result = call()
        queue.put(("ok", getattr(result, "shape", None) or len(result)))
    except BaseException as err:  # report, whatever it is
        queue.put((type(err).__name__, str(err)))


def _within(seconds: float, call) -> tuple[str, object]:
    """Run ``call`` in a forked child; fail (instead of hanging the suite) if it takes too long."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_run, args=(call, queue), daemon=True)
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"still running after {seconds} s (hangs)")
    return queue.get(timeout=5)


@pytest.fixture
def series_with_a_trap(tmp_path, request):
    """A 4-slice series plus a FIFO or a symlink to a device named like a slice."""
    volume = ct_volume((8, 6, 4))
    write_series(tmp_path, volume)
    trap = tmp_path / "slice_9999.dcm"
    if request.param == "fifo":
        os.mkfifo(trap)
    else:
        os.symlink(request.param, trap)
    return volume, trap


_TRAPS = ["fifo", "/dev/zero", "/dev/urandom"]


@posix_only
@pytest.mark.parametrize("series_with_a_trap", _TRAPS, indirect=True)
def test_fifo_or_device_in_a_folder_is_skipped_not_read(series_with_a_trap):
    volume, trap = series_with_a_trap
    folder = trap.parent
    assert _within(20, lambda: mt.io.list_series(folder)) == ("ok", 1)
    assert _within(20, lambda: mt.io.load(folder)) == ("ok", volume.shape)


@posix_only
@pytest.mark.parametrize("series_with_a_trap", _TRAPS, indirect=True)
def test_loading_a_fifo_or_device_directly_is_an_error(series_with_a_trap):
    _, trap = series_with_a_trap
    kind, message = _within(20, lambda: mt.io.load(trap))
    assert kind in (InputPathError.__name__, DicomError.__name__)
    assert "slice_9999.dcm" in message and "regular file" in message


@posix_only
def test_symlink_to_a_regular_file_is_a_member(tmp_path):
    volume = ct_volume((8, 6, 4))
    files = write_series(tmp_path / "elsewhere", volume)
    (tmp_path / "series").mkdir()
    for path in files:
        os.symlink(path, tmp_path / "series" / path.name)
    np.testing.assert_array_equal(mt.io.load(tmp_path / "series").numpy(), volume)


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _raises_without_allocating(call, match: str) -> None:
    def expect_error():
        with pytest.raises(DicomError, match=match):
            call()

    assert _peak_bytes(expect_error) < 64 * 1024**2


def test_series_declaring_huge_slices_fails_before_allocating(tmp_path):
    files = write_series(tmp_path, ct_volume((8, 6, 3)))
    for path in files:
        edit_dicom(path, Rows=65535, Columns=65535)
    _raises_without_allocating(lambda: mt.io.load(tmp_path), "slice_000")


def test_legacy_multiframe_declaring_10_8_frames_fails_before_allocating(tmp_path):
    files = write_series(tmp_path, ct_volume((8, 6, 1)))
    edit_dicom(files[0], NumberOfFrames=10**8)
    _raises_without_allocating(lambda: mt.io.load(files[0]), "slice_0000.dcm")


def test_compressed_multiframe_declaring_10_7_frames_hits_the_memory_budget(tmp_path):
    files = write_series(tmp_path, ct_volume((48, 64, 1)))
    ds = pydicom.dcmread(files[0])
    ds.compress(pydicom.uid.RLELossless)
    ds.NumberOfFrames = 10**7
    ds.save_as(files[0], enforce_file_format=True)
    _raises_without_allocating(lambda: mt.io.load(files[0]), "slice_0000.dcm.*memory budget")


def test_enhanced_file_declaring_10_8_frames_fails_fast(tmp_path):
    pytest.importorskip("highdicom")
    enhanced = enhanced_ct(write_series(tmp_path / "series", ct_volume((8, 6, 3))))
    enhanced.NumberOfFrames = 10**8
    # every frame would find a position in the shared group: a per-frame loop runs 10^8 times
    shared = enhanced.SharedFunctionalGroupsSequence[0]
    shared.PlanePositionSequence = enhanced.PerFrameFunctionalGroupsSequence[
        0
    ].PlanePositionSequence
    enhanced.save_as(tmp_path / "enhanced.dcm")
    kind, message = _within(30, lambda: mt.io.load(tmp_path / "enhanced.dcm"))
    assert kind == DicomError.__name__ and "enhanced.dcm" in message


def test_whole_series_is_checked_against_the_memory_budget(tmp_path, monkeypatch):
    write_series(tmp_path, ct_volume((16, 12, 4)))  # 3 KiB as float32
    monkeypatch.setenv("MEDTRANSFER_MAX_VOLUME_BYTES", "2K")
    with pytest.raises(DicomError, match="memory budget"):
        mt.io.load(tmp_path)
    monkeypatch.setenv("MEDTRANSFER_MAX_VOLUME_BYTES", "4K")
    assert mt.io.load(tmp_path).shape == (16, 12, 4)


def test_resampling_onto_an_absurd_grid_hits_the_memory_budget(tmp_path, monkeypatch):
    files = write_series(tmp_path, ct_volume((16, 12, 4)), make_affine(spacing=(1, 1, 2.5)))
    position = [float(v) for v in pydicom.dcmread(files[-1]).ImagePositionPatient]
    edit_dicom(files[-1], ImagePositionPatient=[position[0], position[1], 1e7])
    monkeypatch.setenv("MEDTRANSFER_MAX_VOLUME_BYTES", "64M")
    with pytest.warns(GeometryWarning), pytest.raises(DicomError, match="memory budget"):
        mt.io.load(tmp_path, nonuniform="resample")
