"""``write_json``: how every diagnostics result is saved (atomically, strict JSON, UTF-8)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medtransfer.io import atomic_path

__all__ = ["write_json"]


def write_json(path: str | os.PathLike[str], data: Any, indent: int = 2) -> Path:
    """Write JSON-safe ``data`` to ``path`` through a temporary file; returns the path.

    Example:
        >>> import tempfile, pathlib
        >>> path = write_json(pathlib.Path(tempfile.mkdtemp()) / "r.json", {"p": 0.01})
        >>> path.read_text()
        '{\\n  "p": 0.01\\n}\\n'
    """
    text = json.dumps(data, indent=indent, allow_nan=False, ensure_ascii=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)
