"""Plain-text tables for the CLI's output (``inspect``, ``weights``, the demo's summary).

Example:
    >>> print(table([{"encoder": "resnet18", "weights": "cache"}], ("encoder", "weights")))
    encoder   weights
    --------  -------
    resnet18  cache
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["table"]


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as left-aligned columns under a header line; a missing value is blank."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)
