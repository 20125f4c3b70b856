"""Atomic file writes: write to a temporary sibling, then rename over the destination.

A run killed mid-write leaves either the old file or the new one, never a truncated file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


def _suffixes(path: Path) -> str:
    """Keep multi-part suffixes such as ``.nii.gz`` so writers that sniff the name still work."""
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


def _file_mode(destination: Path) -> int:
    """Keep an existing file's mode; new files get 0666 minus the process umask (as open() does)."""
    if destination.exists():
        return destination.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; on success rename it over ``destination``.

    The temporary file keeps the destination's suffix (``.nii.gz`` included) so format-sniffing
    writers behave the same. On any exception the temporary file is removed and the destination
    is left untouched.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> out.read_text()
        'hello'
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.",
        suffix=f".tmp{_suffixes(destination)}",
        dir=destination.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give the result the usual permissions
            os.chmod(tmp, _file_mode(destination))
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
