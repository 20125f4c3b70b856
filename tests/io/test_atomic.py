"""atomic_path: permissions like open(), the umask never touched, fsync before/after the rename."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from medtransfer.io import atomic
from medtransfer.io.atomic import atomic_path, current_umask


def _forbid_umask(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("os.umask changes the umask of every thread: never call it")

    monkeypatch.setattr(os, "umask", forbidden)


def _real_umask() -> int:
    old = os.umask(0o022)  # only in the test, before forbidding it
    os.umask(old)
    return old


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_0666_minus_the_umask_without_calling_umask(tmp_path, monkeypatch, mask):
    old = os.umask(mask)
    try:
        _forbid_umask(monkeypatch)
        target = tmp_path / f"out{mask:o}.nii.gz"
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"data")
        assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
        assert target.read_bytes() == b"data"
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_umask_probe_fallback_when_proc_is_unavailable(tmp_path, monkeypatch):
    mask = _real_umask()
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    _forbid_umask(monkeypatch)
    assert current_umask(tmp_path) == mask
    assert list(tmp_path.iterdir()) == []  # the probe is gone


def test_existing_mode_is_kept_and_suffixes_survive(tmp_path, monkeypatch):
    _forbid_umask(monkeypatch)
    target = tmp_path / "mask.nii.gz"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".tmp.nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]


def test_file_is_fsynced_before_and_folder_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_path(tmp_path / "ckpt.pt") as tmp:
        tmp.write_bytes(b"x" * 10)
    assert events == [("fsync", "file"), ("replace", 10), ("fsync", "dir")]


def test_a_failing_folder_fsync_that_is_unsupported_is_ignored(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")  # e.g. some network file systems
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("ok")
    assert (tmp_path / "a.txt").read_text() == "ok"


def test_concurrent_writes_never_see_a_changed_umask(tmp_path):
    """Threads writing at once all get the same mode (the old code toggled the umask to 0)."""
    mask = _real_umask()
    modes, errors = [], []

    def write(i):
        try:
            for j in range(20):
                target = tmp_path / f"f{i}_{j}.txt"
                with atomic_path(target) as tmp:
                    tmp.write_text("x")
                modes.append(stat.S_IMODE(target.stat().st_mode))
                other = tmp_path / f"plain{i}_{j}.txt"
                other.write_text("y")  # a plain open() in another thread
                modes.append(stat.S_IMODE(other.stat().st_mode))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert set(modes) == {0o666 & ~mask}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_module_does_not_reference_umask():
    source = Path(atomic.__file__).read_text(encoding="utf-8")
    assert "os.umask(" not in source
