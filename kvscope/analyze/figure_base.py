"""What every analyze figure receives, and small drawing helpers shared by the figure families."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvscope.kit.figures import token_label

K_COLOR, V_COLOR = "#1f77b4", "#d62728"
SINK_COLOR = "#ff7f0e"


@dataclass
class FigureData:
    """Picklable inputs of the figures: analysis ``results`` by name, plus facts about the run.

    ``meta``: ``model``, ``layers``, ``kv_heads``, ``q_heads``, ``head_dim``, ``n_positions``, ``layer``.
    ``scan``: measured perplexity change of evicting each layer / head (``{"layers": [...],
    "heads": [[...]]}``) when ``kvscope prune --scan`` was run, else empty.
    """

    results: dict[str, Any]
    meta: dict[str, Any]
    scan: dict[str, Any] = field(default_factory=dict)


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, layout: str | None = None, **kw):
    """``(fig, axes[row][col])``: a ``matplotlib.figure.Figure`` made without pyplot, so no global
    figure list, no backend switch and nothing to close (it is freed with its last reference).

    The figure has its own Agg canvas at the save resolution (``kvscope.kit.figures.DPI``): its
    ``tight_layout()`` and the save then share one renderer, whose cached text sizes the save reuses
    (about a tenth of the drawing and encoding time of analyze's figures; benchmarks/analyze.py)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kvscope.kit.figures import DPI

    fig = Figure(figsize=(width, height), layout=layout, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def mark_sinks(ax, x: np.ndarray, y: np.ndarray, sink: np.ndarray, label: bool = True) -> None:
    """Ring every sink token's point in orange."""
    if sink.any():
        ax.scatter(
            x[sink],
            y[sink],
            s=160,
            facecolors="none",
            edgecolors=SINK_COLOR,
            linewidths=2,
            label="attention sink" if label else None,
            zorder=5,
        )


def label_points(ax, x: np.ndarray, y: np.ndarray, idx: np.ndarray, tokens: list[str], limit: int = 12) -> None:
    """Annotate up to ``limit`` points with their token text (escaped for matplotlib). Labels of points
    that lie close together (within 6 % of the data range) are stacked downwards with a leader line
    instead of printed on top of each other."""
    fx = np.ptp(x[np.isfinite(x)]) or 1.0 if np.isfinite(x).any() else 1.0
    fy = np.ptp(y[np.isfinite(y)]) or 1.0 if np.isfinite(y).any() else 1.0
    placed: list[tuple[float, float]] = []
    for i in list(idx)[:limit]:
        near = sum(1 for px, py in placed if abs(px - x[i]) / fx < 0.06 and abs(py - y[i]) / fy < 0.06)
        placed.append((x[i], y[i]))
        ax.annotate(
            f"{token_label(tokens[i])} @{i}",
            (x[i], y[i]),
            xytext=(6, 4 - 10 * near),
            textcoords="offset points",
            fontsize=7,
            alpha=0.9,
            arrowprops={"arrowstyle": "-", "lw": 0.4, "alpha": 0.5} if near else None,
        )


def wrap(text: str, width: int = 110) -> str:
    """``text`` broken into lines of at most ``width`` characters (titles and notes)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


WIDE_LOG_DECADES = 3


def log_scale(ax, *which: str) -> None:
    """Log scale on ``ax``'s ``which`` axes ("x", "y"), set after the data are drawn. An axis spanning more
    than ``WIDE_LOG_DECADES`` decades keeps its labelled decade ticks and loses the unlabelled minor ones
    (8 per decade, each a matplotlib Tick of three lines and two texts that every layout pass and draw
    update: 493 of the 1,359 ticks of a default run, a tenth of its figure time); matplotlib itself drops
    them past about ten decades."""
    from matplotlib.ticker import NullLocator

    for name in which:
        getattr(ax, f"set_{name}scale")("log")
        lo, hi = sorted(getattr(ax, f"get_{name}lim")())
        if lo > 0 and np.log10(hi / lo) > WIDE_LOG_DECADES:
            getattr(ax, f"{name}axis").set_minor_locator(NullLocator())


def layer_axis(ax, n_layers: int) -> None:
    """Integer layer ticks, thinned for deep models."""
    step = max(1, n_layers // 15)
    ax.set_xticks(range(0, n_layers, step))
    ax.set_xlabel("layer")
