"""Figures of ``kvscope analyze``: one module per figure family, one registry (``FIGURES``)."""

from kvscope.plots.analyze.base import FigureData
from kvscope.plots.analyze.registry import FIGURES, FigureSpec, draw_figures, encode

__all__ = ["FIGURES", "FigureData", "FigureSpec", "draw_figures", "encode"]
