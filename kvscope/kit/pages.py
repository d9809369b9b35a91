"""HTML for results: every text escaped, figures inlined as PNG (no file, no network).

``summary_html`` is the notebook view every result shares (``ResultMixin._repr_html_``): a title, a table
of ``(name, value)`` rows, then the result's figures.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


def summary_html(title: str, rows: Iterable[tuple[str, Any]], figures: dict[str, Any] | None = None) -> str:
    """``<div>`` with ``title`` in bold, one table row per ``(name, value)`` and each figure inlined."""
    from kvscope.kit.figures import figure_html

    esc = lambda x: html.escape(str(x))  # noqa: E731
    body = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    images = "".join(figure_html(fig) for fig in (figures or {}).values())
    return f"<div><b>{esc(title)}</b><table>{body}</table>{images}</div>"
