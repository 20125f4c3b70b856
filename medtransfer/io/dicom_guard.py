"""Guards for reading DICOM from disk: regular files only, and no raw parser exceptions.

A FIFO or a link to a device named ``.dcm`` would block a reader (or feed it forever), so files
are opened without blocking and checked with ``fstat`` before a byte is read. pydicom and the
decoder plugins raise whatever a damaged file provokes (``struct.error``, ``NotImplementedError``,
a pyo3 ``PanicException`` that is not even an ``Exception``); :func:`reading` turns all of it into
a :class:`~medtransfer.errors.DicomError` that names the file. pydicom also stops quietly at
the end of a truncated file; :func:`overrun` and friends tell a damaged header from a short one.

Example:
    >>> from medtransfer.errors import DicomError
    >>> try:
    ...     with reading("slice_0001.dcm"):
    ...         raise NotImplementedError("Unknown Value Representation")
    ... except DicomError as err:
    ...     print(str(err)[:66])
    Cannot read slice_0001.dcm (NotImplementedError: Unknown Value Rep
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from medtransfer.errors import DicomError, MedTransferError

__all__ = [
    "FATAL_EXCEPTIONS",
    "UNDEFINED_LENGTH",
    "UnreadableFileError",
    "describe_exception",
    "looks_like_dicom",
    "open_regular",
    "overrun",
    "reading",
    "uid_in_file",
    "unreadable",
    "well_formed_uid",
]

UNDEFINED_LENGTH = 0xFFFFFFFF

# Never turned into a DicomError: the user or the interpreter is stopping us.
FATAL_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit)


class UnreadableFileError(DicomError):
    """A file that looks like DICOM but cannot be read, with what a partial parse found.

    ``series_uid`` is the SeriesInstanceUID when the damaged header still holds one;
    ``claims_dicom`` is False when only the file's name and first bytes suggest DICOM (an empty
    ``.dcm`` file, a file cut before its 'DICM' marker), so only its folder ties it to a series.
    """

    def __init__(self, message: str, *, series_uid: str = "", claims_dicom: bool = True):
        super().__init__(message)
        self.series_uid = series_uid
        self.claims_dicom = claims_dicom


def describe_exception(err: BaseException) -> str:
    """``Type: message`` of a parser error, with quoted values removed (they could hold PHI)."""
    text = re.sub(r"b?'[^']*'|b?\"[^\"]*\"", "'...'", str(err)).strip()
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextlib.contextmanager
def reading(path: object) -> Iterator[None]:
    """Turn any failure inside the block into a :class:`DicomError` naming ``path``.

    Our own errors pass through; so do KeyboardInterrupt and SystemExit. Decoder plugins raise
    anything, including pyo3 ``PanicException`` (a ``BaseException``), so everything else is
    caught.
    """
    try:
        yield
    except MedTransferError:
        raise
    except BaseException as err:
        if isinstance(err, FATAL_EXCEPTIONS):
            raise
        raise DicomError(
            f"Cannot read {path} ({describe_exception(err)}). The file is damaged or uses a "
            "feature medtransfer cannot read: re-export it, or remove it from the folder."
        ) from err


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def open_regular(path: Path) -> tuple[BinaryIO, int]:
    """Open ``path`` for binary reading if it is a regular file; return it and its size.

    The open does not block (a FIFO would wait for a writer forever) and the file type comes
    from ``fstat`` of the open file, so there is one system call to check, not a second stat.

    Raises:
        DicomError: ``path`` is a FIFO, a device (e.g. a link to /dev/zero) or a socket.
        OSError: it cannot be opened (missing, permissions).
    """
    handle = open(path, "rb", opener=_open_nonblocking)  # noqa: SIM115 (returned to the caller)
    try:
        info = os.fstat(handle.fileno())
    except OSError:
        handle.close()
        raise
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise UnreadableFileError(
            f"{path} is not a regular file (a FIFO, a device such as /dev/zero, or a socket), so "
            "it is not read. Point at the DICOM file itself, or remove it from the folder.",
            claims_dicom=False,
        )
    return handle, info.st_size


def looks_like_dicom(head: bytes) -> bool:
    """First bytes of a DICOM file whose marker is gone or damaged: nothing at all; the
    all-zero preamble writers put there (a file cut short); a marker with at least two letters
    of 'DICM' left, or a file meta group (0002) right after it; or a data set starting at byte
    0 with group 0002/0008 (an old file without preamble). Text, images, PDFs... are not."""
    if not any(head[:128]) or head[132:134] == b"\x02\x00":
        return True
    if sum(a == b for a, b in zip(head[128:132], b"DICM")) >= 2:
        return True
    return head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def overrun(ds: Any, size: int) -> int | None:
    """Offset of the end of the first element that runs past the end of the file, if any.

    pydicom stops quietly at the end of a file, even in the middle of a value; a value that
    ends after the file does is how a truncated (or length-damaged) file shows. Runs on the
    fresh parse, where every element is a RawDataElement that knows its offset.
    """
    try:
        for raw in ds._dict.values():
            if raw.length != UNDEFINED_LENGTH and raw.value_tell + raw.length > size:
                return raw.value_tell + raw.length
    except (AttributeError, TypeError):  # an element already converted: no offsets to check
        return None
    return None


def uid_in_file(ds: Any, size: int) -> bool:
    """True when the whole SeriesInstanceUID value lies inside the file (read before the value
    is converted: conversion drops the offsets)."""
    raw = ds._dict.get(0x0020000E)
    try:
        return raw.value_tell + raw.length <= size
    except (AttributeError, TypeError):
        return False


def well_formed_uid(uid: str) -> bool:
    """Digits and dots, at most 64 characters: a UID a damaged header did not garble."""
    return 0 < len(uid) <= 64 and set(uid) <= set("0123456789.")


def unreadable(path: Path, problem: str, **kwargs: Any) -> UnreadableFileError:
    """The error for a damaged file: names it, says what is wrong and what to do."""
    return UnreadableFileError(
        f"{path} {problem}: the file is truncated or damaged. Copy it again from the source "
        "(PACS export or archive), or remove it from the folder.",
        **kwargs,
    )
