"""SHA-256 checksums of weight files and their ``<file>.sha256`` sidecars.

A sidecar holds the hex digest first (``sha256sum`` format: ``<digest>  <name>``). No sidecar
means no recorded checksum; an empty or damaged one is an error, never "no checksum": it cannot
tell whether the weights are the ones expected.

Example:
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> _ = f.write_bytes(b"weights")
    >>> sidecar_sha256(f) is None
    True
    >>> _ = sidecar_path(f).write_text(sha256_file(f) + "  w.safetensors")
    >>> verified_sha256(f, sidecar_sha256(f), "weight file") == sha256_file(f)
    True
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from medtransfer.errors import WeightsError

__all__ = ["sha256_file", "sidecar_path", "sidecar_sha256", "verified_sha256"]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Args:
        path: the file.

    Example:
        >>> import tempfile
        >>> f = tempfile.mkdtemp() + "/empty"
        >>> _ = open(f, "wb").close()
        >>> sha256_file(f)[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_sha256(path: Path, expected: str | None, what: str) -> str:
    """The file's SHA-256; a WeightsError when ``expected`` is given and differs."""
    actual = sha256_file(path)
    if expected is not None and actual.lower() != expected.strip().lower():
        raise WeightsError(
            f"Checksum mismatch for {what} {path}: SHA-256 is {actual}, expected {expected}. "
            "The file is corrupt, truncated or not the one expected: delete it and copy or "
            "download it again."
        )
    return actual


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``<file>.sha256`` next to ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sidecar_sha256(path: Path) -> str | None:
    """The SHA-256 recorded next to ``path``; None without a sidecar; an error for a bad one."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        words = side.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as err:
        words = [f"unreadable ({type(err).__name__})"]
    if not words or not _SHA256.fullmatch(words[0]):
        raise WeightsError(
            f"Checksum file {side} is empty or damaged (it must start with the 64-hex-digit "
            f"SHA-256 of {path.name}), so {path} cannot be verified. Re-import the weights "
            f"(medtransfer weights import FILE --name NAME), or, if you know the file is "
            f"right, record its checksum: sha256sum {path.name} > {side.name}"
        )
    return words[0].lower()
