"""Griffe extension for the API reference: read medtransfer's docstrings as the code writes them.

medtransfer's Google-style docstrings use two forms that griffe's parser does not know:

- an ``Example:`` section (griffe only treats ``Examples:`` as doctest examples; ``Example:``
  would become an admonition and render ``>>>`` lines as Markdown quotes);
- ``Args:`` entries that describe several parameters at once (``mean, std: ...``), sometimes
  with the names wrapped over two lines.

Before a docstring is parsed, this rewrites the first into ``Examples:`` and splits the second
into one entry per parameter with the same description. Nothing in the package changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARGS_TITLES = {"Args:", "Arguments:", "Parameters:", "Params:"}
_NAMES = r"\*{0,2}\w+(?:, \*{0,2}\w+)*"


def _split_items(lines: list[str]) -> list[str]:
    """Split ``a, b: text`` items of the Args sections into ``a: text`` and ``b: text``."""
    out: list[str] = []
    in_args, item_indent, i = False, None, 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if _SECTION.match(line) and (item_indent is None or indent < item_indent):
            in_args, item_indent = stripped in _ARGS_TITLES, None
            out.append(line)
            i += 1
            continue
        if not in_args or not stripped:
            out.append(line)
            i += 1
            continue
        if item_indent is None:
            item_indent = indent
        if indent != item_indent:
            out.append(line)
            i += 1
            continue
        head = stripped
        # Names wrapped over several lines: "a, b,\n    c: text".
        while head.endswith(",") and i + 1 < len(lines):
            i += 1
            head = f"{head} {lines[i].strip()}"
        match = re.match(rf"^({_NAMES})(\s*\([^)]*\))?:\s*(.*)$", head)
        if match is None or "," not in match.group(1):
            out.append(" " * indent + head)
            i += 1
            continue
        body = [match.group(3)]
        j = i + 1
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > item_indent
        ):
            body.append(lines[j].strip())
            j += 1
        while body and not body[-1]:
            body.pop()
            j -= 1
        continuation = [" " * (item_indent + 4) + text for text in body[1:]]
        for name in match.group(1).split(", "):
            out.append(" " * item_indent + f"{name}{match.group(2) or ''}: {body[0]}")
            out.extend(continuation)
        i = j
    return out


def normalize_docstring(text: str) -> str:
    """Return ``text`` with ``Example:`` sections renamed and multi-name Args entries split.

    Example:
        >>> normalize_docstring("Args:\\n    a, b: numbers.\\n\\nExample:\\n    x").splitlines()
        ['Args:', '    a: numbers.', '    b: numbers.', '', 'Examples:', '    x']
    """
    text = _EXAMPLE.sub(r"\1Examples:", text)
    return "\n".join(_split_items(text.split("\n")))


class MedtransferDocstrings(griffe.Extension):
    """Normalise every docstring of the loaded objects before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = normalize_docstring(obj.docstring.value)
