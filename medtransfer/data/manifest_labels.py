"""Class labels of a manifest: which column holds them, and class names to integer indices.

A CSV keeps every cell as text, so a classification manifest needs two decisions that only the
user can make: which column is the label (``label_key``) and which name is class 0, 1, ...
(``class_names``). :func:`map_labels` applies both to the raw manifest entries, and reports every
row whose label is missing or cannot be read as one of the classes.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["cell_number", "label_index", "map_labels"]

_SHOWN = 40  # characters of a bad label echoed in a message


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def cell_number(value: Any) -> float | None:
    """A manifest cell as a number: an int/float (bool included) or numeric text, else None.

    Example:
        >>> cell_number(" 2 "), cell_number(1), cell_number("benign")
        (2.0, 1.0, None)
    """
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def label_index(value: Any, class_names: Sequence[str] | None) -> int:
    """One label as a class index: a name from ``class_names`` or an integer (text or number).

    Raises ``ValueError`` with the reason when ``value`` is neither.

    Example:
        >>> label_index("malignant", ["benign", "malignant"]), label_index("1", None), label_index(2.0, None)
        (1, 1, 2)
    """
    if class_names is not None and isinstance(value, str) and value.strip() in class_names:
        return list(class_names).index(value.strip())
    number = None if isinstance(value, bool) else cell_number(value)
    if number is None or not math.isfinite(number) or number != int(number) or number < 0:
        if class_names is not None:
            close = difflib.get_close_matches(str(value), list(class_names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{_short(value)} is not one of class_names {list(class_names)}{hint} nor an "
                f"index 0..{len(class_names) - 1}"
            )
        raise ValueError(
            f"{_short(value)} is not a class index (0, 1, 2, ...); pass class_names=[...] to map "
            "names to indices"
        )
    index = int(number)
    if class_names is not None and index >= len(class_names):
        raise ValueError(f"class index {index} is outside 0..{len(class_names) - 1} (class_names)")
    return index


def map_labels(
    entries: Iterable[tuple[str, dict[str, Any] | str]],
    label_key: str,
    class_names: Sequence[str] | None,
    is_path: Any,
) -> tuple[list[tuple[str, dict[str, Any] | str]], list[str]]:
    """Copy ``label_key`` into ``"label"`` as a class index; paths (segmentation) stay paths.

    Args:
        entries: ``(where, raw record)`` pairs from a manifest reader (an error text instead of a
            record is passed through).
        label_key: the column or key that holds the label.
        class_names: names of classes 0..K-1, or ``None`` for integer labels only.
        is_path: predicate telling a label file path from a class value.

    Returns:
        The entries with ``"label"`` set, and one problem line per bad row.
    """
    mapped: list[tuple[str, dict[str, Any] | str]] = []
    problems: list[str] = []
    for where, raw in entries:
        if isinstance(raw, str):
            mapped.append((where, raw))
            continue
        record = dict(raw)
        value = record.get(label_key)
        if isinstance(value, str) and is_path(value):
            record["label"] = value
        elif value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"{where}, field {label_key!r}: empty; every case needs its class")
            continue
        else:
            try:
                record["label"] = label_index(value, class_names)
            except ValueError as err:
                problems.append(f"{where}, field {label_key!r}: {err}")
                continue
        mapped.append((where, record))
    return mapped, problems
