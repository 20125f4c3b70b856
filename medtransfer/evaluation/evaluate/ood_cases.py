"""Out-of-distribution columns of an evaluation: one score per case, one warning for all flagged.

``predict`` warns per image; an evaluation over many cases collects the scores instead (columns
``ood_score`` and ``out_of_distribution`` of ``Report.cases``) and warns once, naming the cases.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from medtransfer.evaluation.inference.ood import OutOfDistributionWarning

__all__ = ["ood_columns", "ood_score", "quiet_ood", "warn_flagged"]


@contextlib.contextmanager
def quiet_ood() -> Iterator[None]:
    """Silence per-image :class:`OutOfDistributionWarning` (the caller reports them together)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDistributionWarning)
        yield


def ood_columns(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The case's columns from a prediction's meta (empty when no detector was given)."""
    if "ood_score" not in meta:
        return {}
    return {"ood_score": float(meta["ood_score"]), "out_of_distribution": bool(meta["out_of_distribution"])}  # fmt: skip


def ood_score(detector: Any, embedding: np.ndarray) -> tuple[float, bool]:
    """Score of one embedding and whether it is above the detector's threshold."""
    score = float(detector.score(np.asarray(embedding)[None])[0])
    return score, bool(score > detector.threshold)


def warn_flagged(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One warning naming every flagged case (by case id); returns those ids.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_flagged({"a": {"out_of_distribution": True}, "b": {"out_of_distribution": False}})
        ['a']
        >>> "1 of 2 cases" in str(caught[0].message)
        True
    """
    flagged = [cid for cid, row in rows.items() if row.get("out_of_distribution")]
    if flagged:
        shown = ", ".join(flagged[:10]) + (", ..." if len(flagged) > 10 else "")
        warnings.warn(
            f"{len(flagged)} of {len(rows)} cases are out of distribution for the model's "
            f"training data ({shown}): their metrics may not reflect validation; see the "
            "ood_score column, check their acquisition, or adapt (mt.diagnostics.adapt_batchnorm).",
            OutOfDistributionWarning,
            stacklevel=3,
        )
    return flagged
