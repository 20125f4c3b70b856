"""Argument checks shared by the transforms: each failure is a ConfigError naming the argument."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from medtransfer.errors import ConfigError

__all__ = [
    "check_choice",
    "check_pair",
    "check_plan",
    "check_positive_ints",
    "check_spacing",
    "checked_arguments",
    "per_channel",
]

F = TypeVar("F", bound=Callable[..., Any])


def checked_arguments(hints: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Turn a call with an unknown or misplaced argument into a ConfigError with suggestions.

    Python's own ``TypeError`` ("got an unexpected keyword argument") names neither the valid
    arguments nor the likely one; ``hints`` adds a sentence for arguments users bring from a
    sibling function (e.g. a CT ``window`` passed to the MRI preset).

    Example:
        >>> @checked_arguments({"window": "MR has no HU window."})
        ... def mri(*, spacing=None, percentiles=(0.5, 99.5)):
        ...     return spacing
        >>> try:
        ...     mri(spacng=(1, 1, 1))
        ... except ConfigError as err:
        ...     print(err)
        mri() has no argument 'spacng'. Did you mean 'spacing'? Its arguments: spacing, percentiles.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        names = [n for n, p in signature.parameters.items() if p.kind is not p.VAR_KEYWORD]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as err:
                unknown = [k for k in kwargs if k not in signature.parameters]
                if not unknown:
                    raise ConfigError(f"{func.__name__}(): {err}.") from None
                name = unknown[0]
                close = difflib.get_close_matches(name, names, n=2)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                extra = f" {hints[name]}" if hints and name in hints else ""
                raise ConfigError(
                    f"{func.__name__}() has no argument {name!r}.{hint}{extra} "
                    f"Its arguments: {', '.join(names)}."
                ) from None
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def check_choice(argument: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ConfigError with suggestions."""
    allowed = list(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    close = difflib.get_close_matches(str(value), allowed, n=2)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"{argument}={value!r} is not supported; allowed values: "
        f"{', '.join(repr(a) for a in allowed)}.{hint}"
    )


def check_positive_ints(argument: str, value: Any, length: int) -> tuple[int, ...]:
    """``value`` as a tuple of ``length`` positive ints (an int is repeated), else ConfigError."""
    items = [value] * length if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        items = list(items)
    except TypeError:
        items = None
    ok = (
        items is not None
        and len(items) == length
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items)
    )
    if not ok:
        raise ConfigError(
            f"{argument}={value!r} must be {length} positive integers (one per spatial axis), "
            f"e.g. {tuple([96] * length)}."
        )
    return tuple(int(v) for v in items)


def check_pair(argument: str, value: Any) -> tuple[float, float]:
    """``value`` as an increasing pair of floats ``(low, high)``, else ConfigError."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low, high = 0.0, 0.0
    if not high > low:
        raise ConfigError(f"{argument}={value!r} must be two increasing numbers (low, high).")
    return low, high


def per_channel(argument: str, value: float | Sequence[float]) -> tuple[float, ...]:
    """A scalar or a sequence of numbers as a tuple of floats (at least one), else ConfigError."""
    items = [value] if isinstance(value, int | float) else value
    try:
        result = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        result = ()
    if not result:
        raise ConfigError(
            f"{argument}={value!r} must be a number or one number per channel, "
            "e.g. the encoder's input_spec.mean."
        )
    return result


def check_plan(plan: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``plan`` (from ``plan_preprocessing``) as a mapping; ``None`` -> ``{}``."""
    if plan is None:
        return {}
    if not isinstance(plan, Mapping):
        raise ConfigError(
            f"plan must be a dict from mt.transforms.plan_preprocessing; got {type(plan).__name__}."
        )
    return plan


def check_spacing(spacing: Any, length: int) -> tuple[float, ...]:
    """``length`` positive voxel sizes in mm, else a ConfigError naming the argument."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != length or not all(v > 0 for v in values):
        raise ConfigError(
            f"spacing={spacing!r} must be {length} positive voxel sizes in mm, "
            f"e.g. {(1.5,) * length}, or None to keep the image's."
        )
    return values
