"""Size checks before allocating: a tiny file must never make the reader allocate or loop forever.

A header declares how big the pixel data is (NIfTI ``dim``, DICOM ``Rows`` x ``Columns`` x
``NumberOfFrames``); a damaged or hostile file can declare terabytes in a few hundred bytes. Two
checks run before any allocation:

- for uncompressed data, the declared size must fit in the file (:func:`check_declared_bytes`);
- for every read, the decoded size must fit the memory budget (:func:`check_memory_budget`):
  ``MEDTRANSFER_MAX_VOLUME_BYTES`` when set (bytes, or with a ``K``/``M``/``G`` suffix), else half
  of the machine's physical memory.

Example:
    >>> from medtransfer.errors import NiftiError
    >>> from medtransfer.io.limits import check_memory_budget, memory_budget
    >>> memory_budget() > 0
    True
    >>> try:
    ...     check_memory_budget(10**18, path="big.nii", what="the declared volume", error=NiftiError)
    ... except NiftiError as err:
    ...     print(str(err)[:39])
    big.nii: the declared volume would take
"""

from __future__ import annotations

import os

from medtransfer.errors import MedTransferError

__all__ = [
    "BUDGET_ENV",
    "check_declared_bytes",
    "check_memory_budget",
    "memory_budget",
]

BUDGET_ENV = "MEDTRANSFER_MAX_VOLUME_BYTES"
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a modest laptop
        return 8 * 1024**3


def memory_budget() -> int:
    """Largest decoded volume (bytes) a reader may allocate; see the module docstring."""
    raw = os.environ.get(BUDGET_ENV, "").strip().upper().removesuffix("B")
    if not raw:
        return _physical_memory() // 2
    factor = _UNITS.get(raw[-1], 1)
    number = raw[:-1] if raw[-1] in _UNITS else raw
    try:
        value = int(float(number) * factor)
    except ValueError:
        value = 0
    if value <= 0:
        raise MedTransferError(
            f"{BUDGET_ENV}={os.environ[BUDGET_ENV]!r:.40} is not a positive size; use bytes or a "
            "number with K, M or G (e.g. 8G), or unset it."
        )
    return value


def _human(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_memory_budget(
    n_bytes: int, *, path: object, what: str, error: type[MedTransferError] = MedTransferError
) -> None:
    """Raise ``error`` (naming ``path``) when ``n_bytes`` exceeds :func:`memory_budget`."""
    budget = memory_budget()
    if n_bytes > budget:
        raise error(
            f"{path}: {what} would take {_human(n_bytes)}, more than the memory budget of "
            f"{_human(budget)}. The header is probably damaged; if the data really is this large, "
            f"raise the budget with the environment variable {BUDGET_ENV} (e.g. 64G)."
        )


def check_declared_bytes(
    declared: int,
    available: int,
    *,
    path: object,
    what: str,
    error: type[MedTransferError] = MedTransferError,
) -> None:
    """Raise ``error`` (naming ``path``) when uncompressed data declares more than the file holds."""
    if declared > available:
        raise error(
            f"{path}: {what} declares {_human(declared)} of pixel data but the file holds only "
            f"{_human(available)} after the header. The file is truncated or its header is "
            "damaged; re-export it."
        )
