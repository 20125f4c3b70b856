"""SHA-256 sidecars of checkpoints: ``last.pt.sha256`` next to ``last.pt``, ``sha256sum`` format.

A sidecar lists the digests its file may have: one normally, two while the file is being
replaced (the new content and the old one), so a process killed between writing the sidecar and
renaming the checkpoint leaves a pair that still verifies. Sidecars are written atomically and
checked *before* a checkpoint is unpickled.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
    >>> _ = path.write_bytes(b"weights")
    >>> verify(path)
    'unverified'
    >>> write_sidecar(path, [sha256_file(path)])
    >>> verify(path), sidecar_path(path).name
    ('ok', 'c.pt.sha256')
    >>> _ = path.write_bytes(b"weightz")
    >>> verify(path)
    'mismatch'
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from medtransfer.encoders.checksums import sha256_file, sidecar_path
from medtransfer.io.atomic import atomic_path

__all__ = ["recorded_digests", "sha256_file", "sidecar_path", "verify", "write_sidecar"]

_HEX = re.compile(r"^[0-9a-f]{64}$")


def recorded_digests(path: str | os.PathLike[str]) -> list[str] | None:
    """The digests the sidecar of ``path`` accepts; None when there is no sidecar.

    A sidecar that cannot be read or parsed accepts nothing (``[]``): the file then fails.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        lines = side.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    words = [line.split()[0].lower() for line in lines if line.strip()]
    return [w for w in words if _HEX.match(w)]


def write_sidecar(path: str | os.PathLike[str], digests: Sequence[str]) -> None:
    """Write (atomically) the sidecar of ``path`` accepting ``digests`` (duplicates dropped)."""
    path = Path(path)
    lines = "".join(f"{d}  {path.name}\n" for d in dict.fromkeys(digests))
    with atomic_path(sidecar_path(path)) as tmp:
        tmp.write_text(lines, encoding="ascii")


def verify(path: str | os.PathLike[str]) -> str:
    """``"ok"`` (digest recorded), ``"mismatch"`` (corrupt) or ``"unverified"`` (no sidecar)."""
    expected = recorded_digests(path)
    if expected is None:
        return "unverified"
    return "ok" if sha256_file(path) in expected else "mismatch"
