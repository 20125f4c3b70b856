"""Extra sections of a :class:`~medtransfer.evaluation.Report`: checked, JSON-safe, rendered.

A section is ``{"title": str, "html": str, "data": dict}``: a title (escaped on the page), an HTML
fragment produced by the library (shown as given, for example an encoder ranking's table and
plot) and the plain data behind it (kept in the report's JSON so a reader can recompute it).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.format import json_safe

__all__ = ["make_section", "sections_html"]


def make_section(title: Any, html_text: Any, data: Any = None) -> dict[str, Any]:
    """A checked section ``{"title", "html", "data"}`` (data made JSON-safe).

    Raises:
        ConfigError: an empty or non-str title, a non-str fragment, or data that is not a
            JSON-serialisable dict.

    Example:
        >>> import numpy as np
        >>> make_section("Encoder ranking", "<p>two encoders</p>", {"best": np.int64(1)})
        {'title': 'Encoder ranking', 'html': '<p>two encoders</p>', 'data': {'best': 1}}
    """
    if not isinstance(title, str) or not title.strip():
        raise ConfigError(
            f"report section title={title!r}; pass a non-empty string such as 'Encoder ranking'."
        )
    if not isinstance(html_text, str):
        raise ConfigError(
            f"report section {title!r}: html is a {type(html_text).__name__}; pass the HTML "
            "fragment as a str (for a figure use html_page.figure_html(fig, alt))."
        )
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"report section {title!r}: data is a {type(data).__name__}; pass a dict (or None)."
        )
    clean = json_safe(data)
    try:
        json.dumps(clean, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"report section {title!r}: data is not JSON-serialisable ({err}); keep to numbers, "
            "strings, lists and dicts."
        ) from err
    return {"title": title, "html": html_text, "data": clean}


def sections_html(sections: Iterable[Mapping[str, Any]]) -> str:
    """Each section as an ``<h2>`` (escaped title) followed by its fragment, as given.

    Example:
        >>> sections_html([make_section("A & B", "<p>x</p>")])
        '<section class="extra"><h2>A &amp; B</h2>\\n<p>x</p></section>'
    """
    parts = [
        f'<section class="extra"><h2>{html.escape(s["title"], quote=True)}</h2>\n{s["html"]}'
        "</section>"
        for s in sections
    ]
    return "\n".join(parts)
