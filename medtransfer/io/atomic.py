"""Atomic, durable file writes: write to a temporary sibling, flush it to disk, rename it over.

A run killed mid-write (or a machine losing power) leaves either the old file or the new one,
never a truncated or zero-length file: the temporary file is fsync'ed before the rename and the
folder after it. A destination that cannot be written (read-only folder or file system, no
space left, a file where a folder should be) raises :class:`~medtransfer.errors.OutputPathError`
naming the path and what to do, never a raw ``PermissionError``.

The process umask is never changed (``os.umask`` is process-wide, so setting it, even briefly,
races with other threads creating files): new files get ``0o666 & ~umask``, with the umask read
from ``/proc/self/status`` or, where that is unavailable, measured on a probe file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from medtransfer.errors import MedTransferError, OutputPathError

__all__ = ["atomic_path", "current_umask", "make_folder", "output_path_error"]

# Errors that a write into the temporary file can only mean about the output location.
_EDQUOT = getattr(errno, "EDQUOT", errno.ENOSPC)  # not defined on Windows
_NO_SPACE = {errno.ENOSPC, _EDQUOT, errno.EFBIG}
_OUTPUT_ERRNOS = {*_NO_SPACE, errno.EROFS, errno.EACCES, errno.EPERM}
# fsync of a folder is not supported everywhere (some network and FUSE file systems).
_FSYNC_UNSUPPORTED = {
    errno.EINVAL, errno.EBADF, errno.EISDIR,
    getattr(errno, "ENOTSUP", errno.EINVAL), getattr(errno, "EOPNOTSUPP", errno.EINVAL),
}  # fmt: skip


def _suffixes(path: Path) -> str:
    """Keep multi-part suffixes such as ``.nii.gz`` so writers that sniff the name still work."""
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


def current_umask(folder: str | os.PathLike[str] | None = None) -> int:
    """The process umask, read without changing it.

    From the ``Umask:`` line of ``/proc/self/status`` (Linux); elsewhere a probe file is created
    in ``folder`` (default: the temporary folder) with mode ``0o666`` and its mode measured.

    Example:
        >>> import os
        >>> 0 <= current_umask() <= 0o777
        True
    """
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8) & 0o777
    probe = Path(folder or tempfile.gettempdir()) / f".medtransfer-umask-{uuid.uuid4().hex}"
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    try:
        return ~os.fstat(fd).st_mode & 0o666
    finally:
        os.close(fd)
        probe.unlink()


def _file_mode(destination: Path) -> int:
    """Keep an existing file's mode; new files get 0666 minus the process umask (as open() does)."""
    with contextlib.suppress(FileNotFoundError):
        return destination.stat().st_mode & 0o7777
    return 0o666 & ~current_umask(destination.parent)


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` that is a file (so no folder can be made)."""
    for parent in (path, *path.parents):
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def make_folder(folder: str | os.PathLike[str]) -> Path:
    """``mkdir -p folder``; an unwritable place is an :class:`OutputPathError` naming it.

    Example:
        >>> import tempfile, pathlib
        >>> make_folder(pathlib.Path(tempfile.mkdtemp()) / "run" / "evaluation").is_dir()
        True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_path_error(folder, err) from err
    return folder


def output_path_error(destination: str | os.PathLike[str], err: OSError) -> OutputPathError:
    """An :class:`OutputPathError` for ``err`` raised while writing ``destination``.

    The message names the path and says what to do; ``errno`` is kept, so code that inspects
    the ``OSError`` still can.

    Example:
        >>> import errno
        >>> err = output_path_error("/ro/out.nii.gz", PermissionError(errno.EACCES, "denied"))
        >>> "permission" in str(err) and "/ro" in str(err)
        True
    """
    destination = Path(destination)
    folder = destination.parent
    code = err.errno
    blocker = _blocking_file(folder) if code in (errno.ENOTDIR, errno.EEXIST, None) else None
    if blocker is not None:
        fix = (
            f"{blocker} is a file, so the folder {folder} cannot be created. Remove or rename "
            "that file, or choose another output path."
        )
    elif code in (errno.EACCES, errno.EPERM):
        fix = (
            f"permission denied in the folder {folder}. Choose an output folder you can write "
            "to (e.g. under your home folder), or ask for write permission on it."
        )
    elif code == errno.EROFS:
        fix = f"{folder} is on a read-only file system. Choose an output folder on a writable disk."
    elif code in _NO_SPACE:
        fix = (
            f"no space left (or disk quota exceeded) for {folder}. Free some space or choose an "
            "output folder on another disk."
        )
    elif code == errno.EISDIR or destination.is_dir():
        fix = f"{destination} is a folder. Pass a file path (e.g. {destination / 'out'}...)."
    else:
        fix = f"{err.strerror or err}. Check that {folder} exists and is writable."
    error = OutputPathError(f"Cannot write {destination}: {fix}")
    error.errno = code  # (strerror/filename would replace the message in str(error))
    return error


def _fsync(path: Path, *, folder: bool) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if folder:  # e.g. Windows cannot open folders: nothing to flush there
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        if not (folder and err.errno in _FSYNC_UNSUPPORTED):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; on success rename it over ``destination``.

    The temporary file keeps the destination's suffix (``.nii.gz`` included) so format-sniffing
    writers behave the same. After the body, the file gets the destination's existing mode (or
    ``0o666 & ~umask`` for a new file), is fsync'ed, renamed over ``destination`` with
    ``os.replace``, and the folder is fsync'ed. On any exception the temporary file is removed
    and the destination is left untouched. Missing parent folders are created.

    Raises:
        OutputPathError: the folder cannot be created or written (permissions, read-only file
            system, no space left, a file in the way); also raised when the body fails with
            such an error while writing the temporary file.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> out.read_text()
        'hello'
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{destination.name}.",
            suffix=f".tmp{_suffixes(destination)}",
            dir=destination.parent,
        )
        os.close(fd)
    except OSError as err:
        raise output_path_error(destination, err) from err
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as err:  # from the writer: translate only what is about the output
            if isinstance(err, MedTransferError) or err.errno not in _OUTPUT_ERRNOS:
                raise
            raise output_path_error(destination, err) from err
        try:
            if tmp.exists():  # mkstemp makes 0600 files; give the result the usual permissions
                os.chmod(tmp, _file_mode(destination))
                _fsync(tmp, folder=False)
            os.replace(tmp, destination)
            _fsync(destination.parent, folder=True)
        except OSError as err:
            raise output_path_error(destination, err) from err
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
