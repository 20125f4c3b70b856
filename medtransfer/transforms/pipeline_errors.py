"""Surface medtransfer's own errors from inside MONAI pipelines.

MONAI's ``Compose`` (and datasets built on it) wrap every exception raised by a transform in a
``RuntimeError("applying transform ...")``. Our errors already name the file and the fix, so
the wrapper only hides them: these helpers re-raise the ``MedTransferError`` found in the chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from medtransfer.errors import MedTransferError

__all__ = ["medtransfer_errors", "run_pipeline"]


def _ours(err: BaseException) -> MedTransferError | None:
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, MedTransferError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


@contextlib.contextmanager
def medtransfer_errors() -> Iterator[None]:
    """Re-raise a ``MedTransferError`` wrapped by MONAI as itself; other errors pass unchanged.

    Example:
        >>> from medtransfer.errors import InputPathError
        >>> try:
        ...     with medtransfer_errors():
        ...         try:
        ...             raise InputPathError("Not found: a.nii.gz")
        ...         except InputPathError as inner:
        ...             raise RuntimeError("applying transform LoadVolumed") from inner
        ... except InputPathError as err:
        ...     print(err)
        Not found: a.nii.gz
    """
    try:
        yield
    except RuntimeError as err:
        ours = _ours(err)
        if ours is None:
            raise
        raise ours from None


def run_pipeline(pipeline: Callable[[Any], Any], data: Any) -> Any:
    """``pipeline(data)``, with our errors unwrapped (see :func:`medtransfer_errors`)."""
    with medtransfer_errors():
        return pipeline(data)
