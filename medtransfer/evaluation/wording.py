"""How counts read in messages and reports: ``1 case``, ``3 classes``.

The bottom of ``medtransfer.evaluation`` (metrics, accumulators, inference and the report all word
their counts the same way), so it imports nothing of ours.
"""

from __future__ import annotations

__all__ = ["count"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for exactly one: ``1 case``, ``0 cases``, ``3 classes``.

    Example:
        >>> count(1, "case"), count(12, "case"), count(2, "class", "classes")
        ('1 case', '12 cases', '2 classes')
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
