"""Multi-label findings of a manifest (CheXpert-style): finding columns -> one label vector.

Each finding is a column holding ``1`` (present), ``0`` (absent), ``-1`` (uncertain) or an empty
cell (not mentioned). :func:`map_findings` turns the columns named by ``findings`` into the
record's ``"label"``: a list of floats in the order of ``findings``, where NaN means *not
known*. The loss and the metrics skip NaN entries per finding (masking), so a case with one
uncertain finding still teaches the model the others.

What becomes of ``-1`` is the ``uncertain`` policy (Irvin et al., CheXpert, AAAI 2019):

- ``"ignore"`` (default): NaN, masked (the U-Ignore policy);
- ``"positive"``: 1 (U-Ones), for findings whose uncertain mentions are mostly present;
- ``"negative"``: 0 (U-Zeros).

An empty cell is ``missing``: ``"ignore"`` (default, NaN) or ``"negative"`` (0, as CheXpert's
own baselines read "not mentioned").
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medtransfer.data.manifest_labels import cell_number
from medtransfer.errors import ManifestError

__all__ = [
    "MISSING_POLICIES",
    "UNCERTAIN_POLICIES",
    "check_findings",
    "finding_value",
    "findings_labels",
    "map_findings",
    "missing_columns",
]

UNCERTAIN_POLICIES = ("ignore", "positive", "negative")
MISSING_POLICIES = ("ignore", "negative")
_POLICY_VALUE = {"ignore": math.nan, "positive": 1.0, "negative": 0.0}
_SHOWN = 40  # characters of a bad value echoed in a message


def finding_value(value: Any, uncertain: str = "ignore", missing: str = "ignore") -> float:
    """One cell of a finding column as 1.0, 0.0 or NaN (not known).

    Raises ``ValueError`` naming what is accepted when ``value`` is none of 1, 0, -1 or empty.

    Example:
        >>> finding_value("1"), finding_value("-1.0", "positive"), finding_value(None)
        (1.0, 1.0, nan)
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return _POLICY_VALUE[missing]
    number = cell_number(value)  # bool too: True / False from a JSON manifest
    if number is not None and math.isnan(number):
        return _POLICY_VALUE[missing]
    if number == -1.0:
        return _POLICY_VALUE[uncertain]
    if number in (0.0, 1.0):
        return number
    text = repr(value) if len(repr(value)) <= _SHOWN else repr(value)[: _SHOWN - 3] + "..."
    raise ValueError(f"{text} is not 1 (present), 0 (absent), -1 (uncertain) or empty")


def check_findings(findings: Any, uncertain: str, missing: str) -> list[str]:
    """The findings as a list of distinct names; ``ValueError`` with the reason otherwise.

    Example:
        >>> check_findings(["opacity", "effusion"], "ignore", "ignore")
        ['opacity', 'effusion']
    """
    names = [findings] if isinstance(findings, str) else list(findings)
    if (
        not names
        or any(not isinstance(n, str) or not n.strip() for n in names)
        or len(set(names)) < len(names)
    ):
        raise ValueError(f"findings={names!r} must be distinct, non-empty column names")
    reserved = sorted({"macro", "micro", "all", "label"} & set(names))
    if reserved:
        raise ValueError(f"findings may not be called {reserved}; rename those columns")
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain={uncertain!r} is not one of {UNCERTAIN_POLICIES}")
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing={missing!r} is not one of {MISSING_POLICIES}")
    return names


def missing_columns(columns: Iterable[str], findings: Sequence[str]) -> list[str]:
    """One line per finding that is not a column, with the closest column name."""
    known = sorted(set(columns))
    lines = []
    for name in findings:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            lines.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return lines


def map_findings(
    entries: Iterable[tuple[str, dict[str, Any] | str]],
    findings: Sequence[str],
    uncertain: str = "ignore",
    missing: str = "ignore",
) -> tuple[list[tuple[str, dict[str, Any] | str]], list[str]]:
    """Set each record's ``"label"`` to its findings vector; one problem line per bad cell.

    Args:
        entries: ``(where, raw record)`` pairs from a manifest reader (an error text instead
            of a record is passed through).
        findings: the finding columns, in label order.
        uncertain: policy for ``-1`` (see the module text).
        missing: policy for empty cells.

    Returns:
        The entries with ``"label"`` set (a list of floats; NaN: not known), and the problems.

    Example:
        >>> entries = [("row 2", {"image": "a.png", "opacity": "1", "effusion": "-1"})]
        >>> map_findings(entries, ["opacity", "effusion"], uncertain="negative")[0][0][1]["label"]
        [1.0, 0.0]
    """
    mapped: list[tuple[str, dict[str, Any] | str]] = []
    problems: list[str] = []
    for where, raw in entries:
        if isinstance(raw, str):
            mapped.append((where, raw))
            continue
        record, vector, ok = dict(raw), [], True
        for name in findings:
            try:
                vector.append(finding_value(record.get(name), uncertain, missing))
            except ValueError as err:
                problems.append(f"{where}, field {name!r}: {err}")
                ok = False
        if ok:
            record["label"] = vector
            mapped.append((where, record))
    return mapped, problems


def findings_labels(
    manifest: Path,
    entries: list[tuple[str, dict[str, Any] | str]],
    findings: Any,
    uncertain: str,
    missing: str,
) -> tuple[list[tuple[str, dict[str, Any] | str]], list[str]]:
    """:func:`map_findings` after checking the arguments and that every finding is a column.

    Raises:
        ManifestError: bad ``findings``/policies, or a finding that is not a column (with the
            closest column name).
    """
    try:
        names = check_findings(findings, uncertain, missing)
    except ValueError as err:
        raise ManifestError(f"Manifest {manifest}: {err}.") from None
    columns = {name for _, raw in entries if isinstance(raw, dict) for name in raw}
    absent = missing_columns(columns, names)
    if absent and columns:
        raise ManifestError(
            f"Manifest {manifest} has no column {', '.join(absent)} for findings. Columns: "
            f"{', '.join(sorted(columns))}."
        )
    return map_findings(entries, names, uncertain, missing)
