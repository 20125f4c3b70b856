"""Test-time augmentation: the flips ``predict(tta=...)`` averages its probabilities over.

Flips are tuples of spatial axes (0-based, the model's axes, without batch and channel).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from medtransfer.errors import ConfigError

__all__ = ["all_flips", "tta_flips"]


def tta_flips(tta: bool | Sequence[Sequence[int]], spatial_dims: int) -> list[tuple[int, ...]]:
    """The flips test-time augmentation averages over, as tuples of spatial axes (0-based).

    ``tta=True`` gives the identity and one flip per spatial axis (``1 + spatial_dims`` passes);
    a sequence of axis tuples gives exactly those (include ``()`` for the unflipped pass).

    Example:
        >>> tta_flips(True, 3), tta_flips([(), (0, 1)], 2)
        ([(), (0,), (1,), (2,)], [(), (0, 1)])
    """
    if tta is False or tta is None:
        return [()]
    if tta is True:
        return [(), *((axis,) for axis in range(spatial_dims))]
    try:
        flips = [tuple(int(a) for a in axes) for axes in tta]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"tta={tta!r} must be True/False or a list of axis tuples.") from err
    if not flips or any(a < 0 or a >= spatial_dims for axes in flips for a in axes):
        raise ConfigError(
            f"tta={tta!r}: axes must lie in 0..{spatial_dims - 1} (the model's spatial axes)."
        )
    return flips


def all_flips(spatial_dims: int) -> list[tuple[int, ...]]:
    """Every combination of flipped axes (``2**spatial_dims`` passes, as nnU-Net mirrors).

    Example:
        >>> all_flips(2)
        [(), (0,), (1,), (0, 1)]
    """
    return [
        c for r in range(spatial_dims + 1) for c in itertools.combinations(range(spatial_dims), r)
    ]
