"""Shared plotting helpers: a headless backend, atomic saving, and legible token labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never open a window

import matplotlib.pyplot as plt  # noqa: E402

from kvscope.fileio import atomic_path  # noqa: E402

DPI = 110


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


def token_label(text: str, limit: int = 12) -> str:
    """A printable, short label for a token: whitespace made visible, long text cut."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t")
    if shown.strip() == "":
        shown = repr(text)[1:-1] if text else "∅"
        shown = shown.replace(" ", "␣")
    shown = shown.replace("$", r"\$")  # matplotlib would read $...$ as mathtext
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
