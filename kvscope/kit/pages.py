"""HTML for results: every text escaped, figures inlined as PNG (no file, no network).

``summary_html`` is the notebook view every result shares (``ResultMixin._repr_html_``): a title, a table
of ``(name, value)`` rows, notes under it, then the result's figures (full size when there are a few,
thumbnails when there are many, so that the page stays well under a megabyte).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

FULL_SIZE_FIGURES = 6  # more figures than this are shown as thumbnails


def summary_html(
    title: str,
    rows: Iterable[tuple[str, Any]],
    figures: dict[str, Any] | None = None,
    notes: Iterable[str] = (),
    close: bool = True,
) -> str:
    """``<div>`` with ``title`` in bold, one table row per ``(name, value)``, each note in small print and
    each figure inlined (closed after, unless ``close`` is False: figures the result holds)."""
    from kvscope.kit.figures import figure_html, thumbnail_html

    esc = lambda x: html.escape(str(x))  # noqa: E731
    body = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    foot = "".join(f"<p><small>{esc(n)}</small></p>" for n in notes)
    figures = figures or {}
    if len(figures) > FULL_SIZE_FIGURES:
        images = "".join(thumbnail_html(name, fig) for name, fig in figures.items())
        if close:
            import matplotlib.pyplot as plt

            for fig in figures.values():
                plt.close(fig)
    else:
        images = "".join(figure_html(fig, close=close) for fig in figures.values())
    return f"<div><b>{esc(title)}</b><table>{body}</table>{foot}{images}</div>"
