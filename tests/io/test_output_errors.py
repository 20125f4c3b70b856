"""Unwritable outputs raise OutputPathError naming the path and the fix, in every writer and the CLI.

Root ignores permission bits, so besides a real read-only folder (skipped as root) the failures
are simulated: a regular file where the output folder should be, and OSErrors with the errno a
read-only folder, a read-only file system or a full disk gives.
"""

from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pytest
import torch

import medtransfer as mt
from medtransfer.cli import main
from medtransfer.errors import MedTransferError, OutputPathError
from medtransfer.io import atomic
from medtransfer.io.dicom_seg import save_dicom_seg
from medtransfer.training.checkpoint import save_checkpoint

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def reference_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref") / "ct"
    mt.io.write_dicom_series(np.zeros((8, 6, 3)), folder, affine=np.eye(4))
    return folder


def _writers(reference_series):
    mask = np.zeros((8, 6, 3), np.uint8)
    mask[2:4, 2:4, 1] = 1
    return {
        "save": lambda out: mt.io.save(mask, out / "mask.nii.gz", affine=np.eye(4)),
        "dicom_series": lambda out: mt.io.write_dicom_series(mask, out / "ct", affine=np.eye(4)),
        "dicom_seg": lambda out: save_dicom_seg(mask, reference_series, out / "seg.dcm", {1: "x"}),
        "checkpoint": lambda out: save_checkpoint(out / "last.pt", {"w": torch.ones(1)}),
    }


WRITERS = ["save", "dicom_series", "dicom_seg", "checkpoint"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_file_where_the_output_folder_should_be(tmp_path, reference_series, writer):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(OutputPathError) as info:
        _writers(reference_series)[writer](blocker / "case1")
    message = str(info.value)
    assert str(blocker) in message and "is a file" in message and "Remove or rename" in message
    assert isinstance(info.value, OSError) and isinstance(info.value, MedTransferError)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left"),
    ],
    ids=["EACCES", "EROFS", "ENOSPC"],
)
def test_unwritable_folder_is_an_output_path_error(
    tmp_path, monkeypatch, reference_series, writer, code, words
):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputPathError, match=words) as info:
        _writers(reference_series)[writer](tmp_path / "out")
    assert str(tmp_path / "out") in str(info.value)
    assert info.value.errno == code


def test_full_disk_while_writing_and_failing_rename(tmp_path, monkeypatch):
    with (
        pytest.raises(OutputPathError, match="no space left"),
        atomic.atomic_path(tmp_path / "a.bin") as tmp,
    ):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary left

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(OutputPathError, match="read-only file system"):
        mt.io.save(np.zeros((2, 2, 2)), tmp_path / "b.nii.gz", affine=np.eye(4))
    assert list(tmp_path.iterdir()) == []


def test_other_errors_of_the_body_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError), atomic.atomic_path(tmp_path / "a.bin"):
        (tmp_path / "missing-input.txt").read_text()  # reading an input: not an output problem
    with pytest.raises(ValueError), atomic.atomic_path(tmp_path / "a.bin"):
        raise ValueError("bug")
    assert list(tmp_path.iterdir()) == []


def test_destination_that_is_a_folder(tmp_path):
    (tmp_path / "out.nii.gz").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        mt.io.save(np.zeros((2, 2, 2)), tmp_path / "out.nii.gz", affine=np.eye(4))


@pytest.mark.skipif(IS_ROOT, reason="root ignores permission bits; simulated in the tests above")
@pytest.mark.parametrize("writer", WRITERS)
def test_real_read_only_folder(tmp_path, reference_series, writer):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(OutputPathError, match="permission denied") as info:
            _writers(reference_series)[writer](folder)
        assert str(folder) in str(info.value)
    finally:
        os.chmod(folder, 0o755)


def test_cli_prints_the_fix_not_an_internal_error(tmp_path, monkeypatch, capsys):
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    import timm

    save_file(timm.create_model("resnet18").state_dict(), str(weights))
    blocker = tmp_path / "home"
    blocker.write_text("a file")
    monkeypatch.setenv("MEDTRANSFER_HOME", str(blocker))
    assert main(["weights", "import", str(weights), "--name", "resnet18"]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and "please report" not in err
    assert "medtransfer: error: Cannot write" in err and f"{blocker} is a file" in err
