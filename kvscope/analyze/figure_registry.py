"""Drawing the registry's figures (``kvscope.analyze.registry.FIGURES``, in report order): each from one
prompt (``draw``) or from many (``draw_many``, absent for views that only make sense on one prompt).

``draw_figures`` returns ``matplotlib.figure.Figure`` objects made without pyplot; ``encode`` turns one
into file bytes. A figure that fails to draw is reported as skipped with the error.
"""

from __future__ import annotations

from kvscope.analyze.figure_base import FigureData
from kvscope.analyze.registry import FIGURES, Figure

__all__ = ["FIGURES", "Figure", "FigureData", "draw_figures", "encode", "missing_needs"]


def encode(fig, fmt: str, palette: bool = False) -> bytes:
    """The figure's file bytes (``kvscope.kit.figures.figure_bytes``); with ``palette`` a PNG of 256 colours."""
    from kvscope.kit.figures import figure_bytes

    return figure_bytes(fig, fmt, palette=palette)


def missing_needs(name: str, data: FigureData, notes: dict[str, str], many: bool = False) -> str | None:
    """Why figure ``name`` cannot be drawn (an analysis was skipped, or no many-prompt view), else None."""
    spec = FIGURES[name]
    if many and spec.draw_many is None:
        return spec.many_skip
    for need in spec.needs:
        if need not in data.results:
            return notes.get(need, f"analysis {need!r} did not run")
    return None


def draw_figures(
    data: FigureData, notes: dict[str, str] | None = None, many: bool = False
) -> tuple[dict[str, object], dict[str, str]]:
    """``({name: Figure}, {name: why skipped})`` in registry order."""
    notes = notes or {}
    figures, skipped = {}, {}
    for name, spec in list(FIGURES.items()):
        why = missing_needs(name, data, notes, many)
        if why:
            skipped[name] = why
            continue
        try:
            figures[name] = (spec.draw_many if many else spec.draw)(data)
        except Exception as exc:
            skipped[name] = f"failed to draw: {type(exc).__name__}: {exc}"
    return figures, skipped
