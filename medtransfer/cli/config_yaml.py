"""Reading YAML for the CLI's configs safely: a size cap, UTF-8, and bounded alias expansion.

A few hundred bytes of YAML can describe billions of values through anchors and aliases (the
"billion laughs"): PyYAML builds them as shared references, and whatever walks them afterwards
(validation, an error message echoing the value) takes minutes and gigabytes. Configs are small,
so :func:`read_config_text` refuses files over :data:`MAX_CONFIG_BYTES` and :func:`load_yaml`
refuses documents whose aliases add more than :data:`MAX_ALIAS_VALUES` values, or refer to
themselves, before anything is constructed. Every refusal is a
:class:`~medtransfer.errors.ConfigError` naming the file (or ``--set`` option).

Example:
    >>> load_yaml("names: &n [liver, spleen]\\nagain: *n\\n", "run.yaml")
    {'names': ['liver', 'spleen'], 'again': ['liver', 'spleen']}
    >>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
    ...     f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\\n" for p, c in zip("abcde", "bcdef"))
    >>> try:
    ...     load_yaml(bomb, "bomb.yaml")
    ... except ConfigError as err:
    ...     print(str(err)[:52])
    bomb.yaml: its YAML aliases (*name) expand to more t
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from medtransfer.errors import ConfigError

__all__ = ["MAX_ALIAS_VALUES", "MAX_CONFIG_BYTES", "load_yaml", "read_config_text"]

MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; this leaves room for long class lists
MAX_ALIAS_VALUES = 10_000  # values that aliases may add to a document (ordinary reuse: a few)
_CAP = 10**12  # sizes saturate here: the arithmetic stays small however deep the nesting


class _Refused(Exception):
    """Raised inside the loader; :func:`load_yaml` turns it into a ConfigError."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that checks the composed node graph before constructing Python objects."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        distinct, expanded = _sizes(node)
        if expanded - distinct > MAX_ALIAS_VALUES:
            raise _Refused(
                f"its YAML aliases (*name) expand to more than {MAX_ALIAS_VALUES} values "
                f"({'over 10^12' if expanded >= _CAP else expanded} in all, from {distinct} "
                "written): an alias bomb? Write the values out, or reuse fewer of them."
            )
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _sizes(root: yaml.Node) -> tuple[int, int]:
    """(distinct nodes, nodes after expanding every alias); iterative, memoised per node."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = min(_CAP, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise _Refused(
                    "a YAML alias (*name) refers to a value that contains it (recursive "
                    "aliases): write the value out."
                )
            if id(child) not in sizes:
                stack.append((child, False))
    return len(sizes), sizes[id(root)]


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)`` with bounded alias expansion; errors name ``source``.

    Raises:
        ConfigError: invalid YAML, an alias bomb, or recursive aliases.
    """
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except _Refused as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from None


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of a config file, at most :data:`MAX_CONFIG_BYTES`, decoded as UTF-8.

    Raises:
        ConfigError: missing, not a regular file, too large, unreadable or not UTF-8 text.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist; pass a YAML file (see configs/).")
    if not path.is_file():
        raise ConfigError(f"Config file {path} is not a regular file; pass a YAML file.")
    limit_mb = MAX_CONFIG_BYTES / 1e6
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"Config file {path} cannot be read ({err.strerror}).") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config file {path} is larger than {limit_mb:g} MB; a run config is a few kB. "
            "Pass the YAML config, not a data file."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8 YAML."
        ) from None
