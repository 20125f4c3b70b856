"""Post-processing options as users write them (class names, True/False) and as sentences.

:func:`resolve_postprocess` turns what a user passes to ``evaluate_segmentation(postprocess=...)``
or writes under ``evaluation.postprocess`` in a run config into keyword arguments of
:func:`~medtransfer.evaluation.postprocess` (class names become label values, every
name and key is checked); :func:`describe_postprocess` says in words what those arguments do,
for the CLI output and the report's methods section. Post-processing is opt-in: ``None`` and
``False`` mean none, and options that enable no step mean none too.

Example:
    >>> options = resolve_postprocess({"largest_component": ["liver"]}, ["liver", "lesion"])
    >>> options
    {'largest_component': [1]}
    >>> describe_postprocess(options, ["liver", "lesion"])
    'keep the largest connected component of liver'
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from medtransfer.errors import ConfigError

__all__ = ["POSTPROCESS_OPTIONS", "describe_postprocess", "resolve_postprocess"]

POSTPROCESS_OPTIONS = (
    "largest_component",
    "min_island_mm3",
    "fill_holes",
    "labels",
    "connectivity",
)
_STEPS = ("largest_component", "min_island_mm3", "fill_holes")
_CLASS_LISTS = ("largest_component", "fill_holes", "labels")


def _names_by_value(class_names: Any) -> dict[int, str]:
    if isinstance(class_names, Mapping):
        return {int(k): str(v) for k, v in class_names.items()}
    if isinstance(class_names, Sequence) and not isinstance(class_names, str):
        return {i + 1: str(n) for i, n in enumerate(class_names)}
    return {}


def _class_value(item: Any, names: dict[int, str], field: str) -> int:
    """One class given as a label value or a name, as its label value (checked)."""
    known = ", ".join(f"{n} ({v})" for v, n in names.items()) or "unknown (no class names given)"
    if isinstance(item, str) and item.strip().isdigit():
        item = int(item)
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 1 or (names and item not in names):
            raise ConfigError(
                f"{field}: class {item} is not a foreground class; classes: {known} (background "
                "0 is never post-processed)."
            )
        return item
    if isinstance(item, str):
        by_name = {n: v for v, n in names.items()}
        folded = {n.casefold(): v for n, v in by_name.items()}
        if item in by_name or item.casefold() in folded:
            return by_name.get(item) or folded[item.casefold()]
        close = difflib.get_close_matches(item, list(by_name), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{field}: {item[:80]!r} is not a class name{hint} Classes: {known}.")
    raise ConfigError(f"{field}: {item!r} is neither a class name nor a label value; classes: {known}.")  # fmt: skip


def _class_list(value: Any, names: dict[int, str], field: str) -> list[int]:
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    return [_class_value(item, names, field) for item in items]


def resolve_postprocess(
    postprocess: bool | Mapping[str, Any] | None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    *,
    where: str = "postprocess",
) -> dict[str, Any] | None:
    """Keyword arguments of ``postprocess()`` from user options, or None when nothing is enabled.

    Args:
        postprocess: ``None``/``False`` (none), ``True`` (the largest component of every class)
            or a dict of :data:`POSTPROCESS_OPTIONS`; ``largest_component``/``fill_holes`` take
            ``True`` or a list of classes, ``min_island_mm3`` a volume or ``{class: volume}``;
            classes are label values or names from ``class_names``.
        class_names: foreground class names (label 1, 2, ...) or ``{value: name}``.
        where: the option's name in messages (e.g. ``"evaluation.postprocess"``).

    Raises:
        ConfigError: unknown option, unknown class name (with the closest one), bad value.
    """
    if postprocess is None or postprocess is False:
        return None
    if postprocess is True:
        return {"largest_component": True}
    if not isinstance(postprocess, Mapping):
        raise ConfigError(
            f"{where}={postprocess!r:.80}: use None or False (none), True (the largest component "
            f"of every class) or a dict of options {POSTPROCESS_OPTIONS}, e.g. "
            "{'largest_component': ['liver']}."
        )
    unknown = sorted(set(postprocess) - set(POSTPROCESS_OPTIONS))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), POSTPROCESS_OPTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: postprocess options {unknown} are unknown{hint}; allowed: "
            f"{POSTPROCESS_OPTIONS}."
        )
    names = _names_by_value(class_names)
    out: dict[str, Any] = {}
    for key in _CLASS_LISTS:
        value = postprocess.get(key)
        if value is None or value is False:
            continue
        if value is True and key != "labels":
            out[key] = True
        else:
            out[key] = _class_list(value, names, f"{where}.{key}")
    islands = postprocess.get("min_island_mm3")
    if isinstance(islands, Mapping):
        field = f"{where}.min_island_mm3"
        out["min_island_mm3"] = {
            _class_value(k, names, field): _volume(v, field) for k, v in islands.items()
        }
    elif islands is not None:
        out["min_island_mm3"] = _volume(islands, f"{where}.min_island_mm3")
    if postprocess.get("connectivity") is not None:
        out["connectivity"] = postprocess["connectivity"]
    enabled = any(out.get(step) not in (None, False, [], {}) for step in _STEPS)
    return out if enabled else None


def _volume(value: Any, field: str) -> float:
    try:
        volume = float(value)
    except (TypeError, ValueError):
        volume = -1.0
    if not volume >= 0:
        raise ConfigError(f"{field}: {value!r:.80} must be a volume in mm³ (a number >= 0).")
    return volume


def describe_postprocess(
    options: Mapping[str, Any] | None, class_names: Sequence[str] | Mapping[int, str] | None = None
) -> str:
    """What resolved options do, in words, in the order they are applied ("none" without any).

    Example:
        >>> describe_postprocess({"min_island_mm3": {2: 20.0}, "fill_holes": True}, ["liver", "lesion"])
        'remove islands under 20 mm³ from lesion; fill holes in every class'
    """
    if not options:
        return "none"
    names = _names_by_value(class_names)

    def shown(values: Any) -> str:
        if values is True or values is None:
            restrict = options.get("labels")
            return "every class" if not restrict else shown(restrict)
        values = [values] if isinstance(values, (int, str)) else list(values)
        return ", ".join(names.get(int(v), f"class {v}") for v in values)

    parts = []
    islands = options.get("min_island_mm3")
    if isinstance(islands, Mapping):
        parts += [f"remove islands under {float(v):g} mm³ from {shown([k])}" for k, v in islands.items()]  # fmt: skip
    elif islands is not None:
        parts.append(f"remove islands under {float(islands):g} mm³ from {shown(True)}")
    if options.get("largest_component"):
        parts.append(f"keep the largest connected component of {shown(options['largest_component'])}")  # fmt: skip
    if options.get("fill_holes"):
        parts.append(f"fill holes in {shown(options['fill_holes'])}")
    if options.get("connectivity") == 1:
        parts.append("components connected by faces only")
    return "; ".join(parts) or "none"
