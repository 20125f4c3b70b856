"""Readable messages for the CLI's configs: pydantic errors as one ConfigError, field tables.

Generic over the root model, so :mod:`medtransfer.cli.config` (the models) imports this module and
not the other way round. Values and keys echoed in messages are shortened (:func:`shorten`) and
at most :data:`MAX_LINES` fields are listed, so a huge or hostile config gives a short message.
"""

from __future__ import annotations

import difflib
import reprlib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError

from medtransfer.errors import ConfigError

__all__ = ["MAX_LINES", "closest", "field_reference", "shorten", "validation_message"]

MAX_LINES = 20  # invalid fields listed in one message; the rest are counted
WIDTH = 80  # characters of a value or key echoed in a message

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = WIDTH
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def shorten(value: Any, width: int = WIDTH) -> str:
    """``repr(value)`` cut to ``width`` characters with an ellipsis (cheap for huge values).

    Example:
        >>> shorten("x" * 1000, width=12)
        "'xxxxxxxx..."
        >>> shorten([1, 2])
        '[1, 2]'
    """
    text = _REPR.repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _cut(text: str, width: int = WIDTH) -> str:
    """A key or path part as it is, cut to ``width`` characters."""
    return text if len(text) <= width else text[: width - 3] + "..."


def validation_message(
    err: ValidationError, root: type[BaseModel], source: str = "config"
) -> ConfigError:
    """One :class:`ConfigError` listing every bad field of a pydantic ``ValidationError``.

    Args:
        err: the error pydantic raised validating ``root``.
        root: the top-level config model (unknown keys are matched against its fields).
        source: what was validated, for the message (usually the config file).
    """
    grouped: dict[str, list[tuple[dict[str, Any], tuple[str, ...]]]] = {}
    for item in err.errors():
        loc = tuple(str(p) for p in item["loc"])
        grouped.setdefault(_field_path(loc), []).append((item, loc))
    lines = []
    for path, items in grouped.items():
        text = _describe_all(items, root)
        if text.startswith("@"):
            # model validators report "@field: problem" lines: name each field
            for problem in text.split("\n"):
                key, _, message = problem.lstrip("@").partition(": ")
                prefix = "" if path == "(top level)" else f"{path}."
                lines.append(f"  - {prefix}{key}: {message}")
        else:
            lines.append(f"  - {path}: {text}")
    count = len(lines)
    head = f"{source} has {count} invalid field{'s' if count > 1 else ''}:"
    if count > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"  ... and {count - MAX_LINES} more"]
    return ConfigError("\n".join([head, *lines, "See docs/cli.md for every field."]))


def _field_path(loc: tuple[str, ...]) -> str:
    # Union members add their type name to the location (e.g. 'tuple[float, float]'); hide them.
    return ".".join(_cut(p) for p in loc if not _is_type_part(p)) or "(top level)"


def _is_type_part(part: str) -> bool:
    return any(c in part for c in "[](), ") or part in _TYPE_NAMES


_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "tuple", "function-after", "none"}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _describe_all(items: list[tuple[dict[str, Any], tuple[str, ...]]], root: Any) -> str:
    if len(items) == 1:
        return _describe(*items[0], root)
    # A value that fits no member of a union: one line naming every accepted form.
    given = items[0][0].get("input")
    forms = [
        loc[-1] if _is_type_part(loc[-1]) else _describe(item, loc, root) for item, loc in items
    ]
    return f"wrong type (got {shorten(given)}); expected one of: {'; '.join(dict.fromkeys(forms))}"


def _describe(item: dict[str, Any], loc: tuple[str, ...], root: Any) -> str:
    kind, given, ctx = item["type"], item.get("input"), item.get("ctx", {})
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], root)
        close = closest(loc[-1][:100], allowed)
        hint = f"did you mean {close!r}? " if close else ""
        return f"unknown key; {hint}Allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return "required; missing"
    if kind == "literal_error":
        allowed = ctx.get("expected", "")
        close = closest(shorten(given).strip("'"), _literal_values(allowed))
        hint = f"; did you mean {close!r}?" if close else ""
        return f"must be one of {allowed} (got {shorten(given)}){hint}"
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    bound = next((k for k in _BOUNDS if k in ctx), None)
    if bound is not None:
        return f"must be {_BOUNDS[bound]} {ctx[bound]} (got {shorten(given)})"
    message = item["msg"]
    message = message[0].lower() + message[1:] if message else message
    message = message.replace("input should be", "must be")
    return f"{message} (got {shorten(given)})"


# Names other tools use for a field (Lightning, nnU-Net, MONAI bundles...): the field they mean.
_SYNONYMS = {
    "learning_rate": "lr", "lr_rate": "lr", "base_lr": "lr",
    "num_epochs": "epochs", "max_epochs": "epochs", "n_epochs": "epochs",
    "max_steps": "steps", "num_steps": "steps", "iterations": "steps",
    "patch_size": "roi_size", "crop_size": "roi_size", "patch": "roi_size",
    "backbone": "encoder", "arch": "encoder", "pretrained": "weights",
    "n_classes": "num_classes", "out_channels": "num_classes", "classes": "class_names",
    "label_column": "label_key", "label_col": "label_key", "target": "label_key",
    "output_dir": "run_dir", "out_dir": "run_dir", "scheduler": "schedule",
    "modality": "preset", "batchsize": "batch_size", "bs": "batch_size", "wd": "weight_decay",
    "keep_largest": "largest_component", "keep_largest_component": "largest_component",
    "min_size": "min_island_mm3", "fill": "fill_holes",
}  # fmt: skip


def closest(given: str, allowed: list[str]) -> str | None:
    """The allowed name a user most likely meant: synonym, other case, prefix, then spelling.

    Example:
        >>> closest("learning_rate", ["epochs", "lr"]), closest("MRI", ["ct", "mri"])
        ('lr', 'mri')
        >>> closest("roi", ["roi_size", "spacing"]), closest("epoch", ["epochs", "steps"])
        ('roi_size', 'epochs')
    """
    text = given.strip()
    folded = {a.casefold(): a for a in allowed}
    synonym = _SYNONYMS.get(text.casefold())
    if synonym in allowed:
        return synonym
    if text.casefold() in folded:
        return folded[text.casefold()]
    low = text.casefold()
    prefixed = [a for a in allowed if (len(low) >= 3 and a.startswith(low)) or low.startswith(a)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(low, allowed, n=1, cutoff=0.6)
    return close[0] if close else None


def _literal_values(expected: str) -> list[str]:
    return [part.strip(" '\"") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def _allowed_keys(loc: tuple[str, ...], root: Any) -> list[str]:
    model: Any = root
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        model = next((t for t in _types_of(annotation) if _is_model(t)), None)
        if model is None:
            return []
    return sorted(model.model_fields)


def _types_of(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [t for a in args for t in _types_of(a)]


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


# ------------------------------------------------------------------------------- documentation
def field_reference(root: type[BaseModel]) -> str:
    """A Markdown table of every field of the config model ``root`` (sections and their keys).

    Example:
        >>> from medtransfer.cli.config import RunConfig
        >>> field_reference(RunConfig).splitlines()[0]
        '| field | type | default | description |'
    """
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for section, info in root.model_fields.items():
        model = info.annotation
        for name, field in model.model_fields.items():
            if _is_model(field.annotation):
                for sub, sub_field in field.annotation.model_fields.items():
                    rows.append(_row(f"{section}.{name}.{sub}", sub_field))
            else:
                rows.append(_row(f"{section}.{name}", field))
    return "\n".join(rows)


def _row(path: str, field: Any) -> str:
    kind = _type_text(field.annotation)
    if field.is_required():
        default = "required"
    elif field.default_factory is not None:
        default = f"`{_plain(field.default_factory())}`"
    else:
        default = f"`{_plain(field.default)}`"
    return f"| `{path}` | {kind} | {default} | {field.description or ''} |"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return "{...}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return "null" if value is None else value


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(_type_text(a) for a in args) + "]"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    return {Path: "path", str: "text", int: "int", float: "number", bool: "bool"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )
