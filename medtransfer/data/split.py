"""Patient-level train/val/test splits and k-fold cross-validation.

All cases of one patient (records sharing the ``by`` key) always land in the same split or fold, so
no patient leaks from training into evaluation. With ``stratify`` the patients of each class are
spread over the splits in proportion to the fractions. Results depend only on the records' content
and the seed, not on the order of the records.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

from medtransfer.errors import SplitError

__all__ = ["Fold", "Split", "kfold", "split"]

Record = dict[str, Any]
_MAX_LISTED = 10


class Split(NamedTuple):
    """Train/val/test lists of records (the original dict objects, in their input order).

    A named tuple: unpack it (``train, val, test = split(...)``) or use the attributes.
    """

    train: list[Record]
    val: list[Record]
    test: list[Record]


class Fold(NamedTuple):
    """One cross-validation fold: ``train`` and ``val`` lists of records."""

    train: list[Record]
    val: list[Record]


def split(
    records: Sequence[Record],
    by: str = "patient_id",
    stratify: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Split:
    """Split records into train/val/test so that no patient is in two splits.

    Patients (distinct values of ``records[i][by]``) are shuffled with ``seed`` and assigned so
    that split sizes, counted in patients, are the fractions of the patient count rounded by the
    largest-remainder rule; every split with a non-zero fraction gets at least one patient.

    With ``stratify="key"``, each patient's class is the most frequent value of ``key`` among its
    records (ties: the smallest value as text), and each class is spread over the splits in
    proportion to the fractions, as closely as the exact split sizes allow (usually within one
    patient). Use a categorical key (e.g. ``"label"`` or ``"has_lesion"``).

    Args:
        records: dict records, e.g. from :func:`~medtransfer.data.load_manifest`.
        by: record key that identifies a patient.
        stratify: record key to stratify on, or ``None``.
        fractions: ``(train, val, test)`` or ``(train, val)``, each >= 0, summing to 1.
        seed: random seed; the same records and seed always give the same split.

    Returns:
        A :class:`Split` named tuple ``(train, val, test)``; ``test`` is empty when its fraction is
        0 or only two fractions are given.

    Raises:
        SplitError: bad fractions, records without the ``by``/``stratify`` key, or fewer patients
            than splits to fill (the message says how many are needed).

    Example:
        >>> records = [{"case_id": f"c{i}", "patient_id": f"p{i // 2}"} for i in range(20)]
        >>> train, val, test = split(records, seed=0)
        >>> len(train), len(val), len(test)
        (14, 4, 2)
        >>> {r["patient_id"] for r in train} & {r["patient_id"] for r in test}
        set()
    """
    fractions = _check_fractions(fractions)
    parts = _partition(records, by, stratify, list(fractions), seed, what="the fractions")
    if len(parts) == 2:
        parts.append([])
    return Split(*parts)


def kfold(
    records: Sequence[Record],
    k: int = 5,
    by: str = "patient_id",
    stratify: str | None = None,
    seed: int = 0,
) -> list[Fold]:
    """K-fold cross-validation at the patient level.

    Patients are dealt into ``k`` groups of (nearly) equal size, stratified on ``stratify`` when
    given (as in :func:`split`); fold ``i`` validates on group ``i`` and trains on the others. Every
    patient is validated exactly once and is never in train and val of the same fold.

    Args:
        records: dict records, e.g. from :func:`~medtransfer.data.load_manifest`.
        k: number of folds, at least 2.
        by: record key that identifies a patient.
        stratify: record key to stratify on, or ``None``.
        seed: random seed; the same records and seed always give the same folds.

    Returns:
        ``k`` :class:`Fold` named tuples ``(train, val)``, records in their input order.

    Raises:
        SplitError: ``k`` < 2, records without the ``by``/``stratify`` key, or fewer than ``k``
            patients.

    Example:
        >>> records = [{"case_id": f"c{i}", "patient_id": f"p{i}"} for i in range(10)]
        >>> folds = kfold(records, k=5, seed=0)
        >>> [len(fold.val) for fold in folds]
        [2, 2, 2, 2, 2]
        >>> sorted(r["case_id"] for fold in folds for r in fold.val) == sorted(f"c{i}" for i in range(10))
        True
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise SplitError(f"kfold: k must be an integer >= 2, got {k!r}.")
    groups = _partition(records, by, stratify, [1.0 / k] * k, seed, what=f"k={k} folds")
    return [
        Fold(train=[r for j, group in enumerate(groups) if j != i for r in group], val=groups[i])
        for i in range(k)
    ]


# --- shared machinery ---


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as err:
        raise SplitError(f"split: fractions must be numbers, got {fractions!r}.") from err
    if len(values) not in (2, 3):
        raise SplitError(
            f"split: fractions must be (train, val, test) or (train, val), got {len(values)} values."
        )
    if any(f < 0 or math.isnan(f) for f in values) or not math.isclose(
        sum(values), 1.0, abs_tol=1e-6
    ):
        raise SplitError(
            f"split: fractions must be >= 0 and sum to 1, got {values} (sum {sum(values):g})."
        )
    if values[0] == 0:
        raise SplitError("split: the train fraction must be > 0.")
    return values


def _partition(
    records: Sequence[Record],
    by: str,
    stratify: str | None,
    fractions: list[float],
    seed: int,
    what: str,
) -> list[list[Record]]:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SplitError(f"seed must be an integer, got {seed!r}.")
    records = list(records)
    patients = _patients(records, by)
    classes = _patient_classes(records, by, stratify) if stratify else dict.fromkeys(patients, 0)
    needed = sum(1 for f in fractions if f > 0)
    if len(patients) < needed:
        raise SplitError(
            f"Too few patients for {what}: {len(patients)} distinct {by!r} values, at least "
            f"{needed} needed (one per non-empty split). Add cases or use fewer splits/folds."
        )
    assignment = _assign(patients, classes, fractions, seed)
    parts: list[list[Record]] = [[] for _ in fractions]
    for record in records:
        parts[assignment[_key(record[by])]].append(record)
    return parts


def _key(value: Any) -> Hashable:
    return value if isinstance(value, Hashable) else repr(value)


def _describe(index: int, record: Record) -> str:
    case = record.get("case_id")
    return f"record {index} (case {case!r})" if case is not None else f"record {index}"


def _patients(records: list[Record], by: str) -> list[Hashable]:
    if not records:
        raise SplitError("Nothing to split: the list of records is empty.")
    missing = [
        _describe(i, r)
        for i, r in enumerate(records)
        if not isinstance(r, dict) or r.get(by) is None
    ]
    if missing:
        listed = ", ".join(missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise SplitError(
            f"{len(missing)} record(s) have no {by!r} value: {listed}{more}. Add the key to every "
            f"record or choose another key with by=..."
        )
    # Sorted by text, so that the result does not depend on the order of the records.
    return sorted({_key(r[by]) for r in records}, key=lambda p: (str(type(p)), str(p)))


def _patient_classes(records: list[Record], by: str, stratify: str) -> dict[Hashable, Hashable]:
    missing = [_describe(i, r) for i, r in enumerate(records) if r.get(stratify) is None]
    if missing:
        listed = ", ".join(missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise SplitError(
            f"Cannot stratify on {stratify!r}: {len(missing)} record(s) have no value: "
            f"{listed}{more}. Fill it in or use stratify=None."
        )
    values: dict[Hashable, Counter[Hashable]] = {}
    for record in records:
        values.setdefault(_key(record[by]), Counter())[_key(record[stratify])] += 1
    classes = {}
    for patient, counter in values.items():
        top = max(counter.values())
        classes[patient] = min((v for v, c in counter.items() if c == top), key=str)
    return classes


def _targets(n: int, fractions: list[float]) -> list[int]:
    """Largest-remainder rounding of n * fractions; each non-zero fraction gets at least one."""
    exact = [f * n for f in fractions]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(fractions)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0:  # take one from the largest split
            donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return counts


def _assign(
    patients: list[Hashable],
    classes: dict[Hashable, Hashable],
    fractions: list[float],
    seed: int,
) -> dict[Hashable, int]:
    """Deal patients into splits: exact split sizes, each class as proportional as possible."""
    rng = random.Random(seed)
    targets = _targets(len(patients), fractions)
    by_class: dict[Hashable, list[Hashable]] = {}
    for patient in patients:
        by_class.setdefault(classes[patient], []).append(patient)
    sizes = [0] * len(fractions)
    assignment: dict[Hashable, int] = {}
    # Small classes first: they have the least room for rounding, large ones absorb the rest.
    for cls in sorted(by_class, key=lambda c: (len(by_class[c]), str(c))):
        members = by_class[cls]
        rng.shuffle(members)
        wanted = [f * len(members) for f in fractions]
        taken = [0] * len(fractions)
        for patient in members:
            open_splits = [s for s in range(len(fractions)) if sizes[s] < targets[s]]
            best = max(
                open_splits,
                key=lambda s: (wanted[s] - taken[s], targets[s] - sizes[s], -s),
            )
            assignment[patient] = best
            taken[best] += 1
            sizes[best] += 1
    return assignment
