"""Case identifiers of records: ``record["case_id"]``, or ``case_0000``, ``case_0001``... by position.

One rule for every report that names cases (evaluation tables, the preprocessing fingerprint), so
a record without a ``case_id`` has the same name everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medtransfer.errors import ConfigError

__all__ = ["case_id", "case_ids"]


def case_id(record: Mapping[str, Any], index: int) -> str:
    """``record["case_id"]`` as text, or ``case_<index>`` (4 digits) when it has none.

    Example:
        >>> case_id({"case_id": 7}, 0), case_id({}, 3)
        ('7', 'case_0003')
    """
    value = record.get("case_id")
    return f"case_{index:04d}" if value is None else str(value)


def case_ids(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """:func:`case_id` of every record; a name given twice is a ConfigError.

    Example:
        >>> case_ids([{"case_id": "ct-7", "patient_id": "Doe^John"}, {}])
        ['ct-7', 'case_0001']
    """
    ids = [case_id(record, i) for i, record in enumerate(records)]
    seen: set[str] = set()
    for cid in ids:
        if cid in seen:
            raise ConfigError(f"case_id {cid!r} appears twice in records; case ids must be unique.")
        seen.add(cid)
    return ids
