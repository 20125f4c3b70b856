"""Case identifiers shared by the accumulators: given, or numbered ``case_0000``, ``case_0001``..."""

from __future__ import annotations

from collections.abc import Sequence

from medtransfer.data.case_ids import case_id
from medtransfer.errors import ConfigError
from medtransfer.evaluation.wording import count

__all__ = ["next_case_ids"]


def next_case_ids(known: Sequence[str], batch: int, case_ids: Sequence[object] | None) -> list[str]:
    """Identifiers for the next ``batch`` cases, checked for length and uniqueness.

    Example:
        >>> next_case_ids(["case_0000"], 2, None)
        ['case_0001', 'case_0002']
    """
    if case_ids is None:
        start = len(known)
        ids = [case_id({}, start + i) for i in range(batch)]  # the one naming rule
    else:
        if isinstance(case_ids, str):
            case_ids = [case_ids]
        ids = [str(c) for c in case_ids]
        if len(ids) != batch:
            raise ConfigError(
                f"got {len(ids)} case_ids for a batch of {count(batch, 'case')}; give one "
                "case_id per case."
            )
    seen = set(known)
    for cid in ids:
        if cid in seen:
            raise ConfigError(f"case_id {cid!r} was given twice; each case must be counted once.")
        seen.add(cid)
    return ids
