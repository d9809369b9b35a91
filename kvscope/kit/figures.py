"""Shared plotting helpers: atomic saving and legible token labels.

No backend is chosen here: a notebook keeps its inline backend, and the CLI picks Agg itself.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from kvscope.fileio import atomic_path

DPI = 110

# The Content-Security-Policy of a self-contained report without scripts (bench, compare): images are
# data: URIs and styles inline, so nothing is fetched and nothing runs.
CSP_META = (
    "<meta http-equiv='Content-Security-Policy' "
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
)


def save_figure(fig: Any, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``fig`` atomically to ``path`` (format from ``fmt`` or the suffix) and close it."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".") or "png"
    try:
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


THUMB_DPI = 28  # a result's _repr_html_ shows thumbnails; result.figures[name] is the full figure


def png_bytes(fig: Any, dpi: int = DPI) -> bytes:
    """``fig`` rendered as PNG bytes (the figure stays open)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def shown(figures: dict[str, Any]) -> dict[str, Any]:
    """``figures`` (name -> matplotlib Figure), each given a ``_repr_png_`` so that a notebook cell ending
    in ``result.figures[name]`` shows the figure inline, whatever matplotlib's backend (no
    ``%matplotlib inline`` needed). Returns the same dict."""
    for fig in figures.values():
        if hasattr(fig, "savefig") and not hasattr(fig, "_repr_png_"):
            fig._repr_png_ = lambda f=fig: png_bytes(f)
    return figures


def thumbnail_html(name: str, fig: Any, dpi: int = THUMB_DPI) -> str:
    """A small inline ``<img>`` of ``fig`` captioned with how to show it full size, for ``_repr_html_``."""
    import html

    data = base64.b64encode(png_bytes(fig, dpi)).decode("ascii")
    cap = html.escape(f'{name}: result.figures["{name}"] shows it full size')
    return (
        f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,{data}" title="{cap}">'
        f'<figcaption style="font-size:small">{html.escape(name)}</figcaption></figure>'
    )


def figure_html(fig: Any, close: bool = True) -> str:
    """``fig`` as an inline ``<img>`` (PNG, base64) for a result's ``_repr_html_``; closes it unless told not to."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        if close:
            plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'


def token_label(text: str, limit: int = 12) -> str:
    """A printable, short label for a token: whitespace made visible, long text cut."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t")
    if shown.strip() == "":
        shown = repr(text)[1:-1] if text else "∅"
        shown = shown.replace(" ", "␣")
    shown = shown.replace("$", r"\$")  # matplotlib would read $...$ as mathtext
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def save_figures(figures: dict[str, Any], folder: Path, fmt: str = "png") -> list[str]:
    """Each figure as ``folder/NAME.fmt`` (atomically, then closed); returns the file names."""
    return [save_figure(fig, Path(folder) / f"{name}.{fmt}").name for name, fig in figures.items()]
