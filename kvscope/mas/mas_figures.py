"""Heatmaps of the incoming agent's query against the shared cache, one per agent transition.

Multi-layer: cosine ``[layer, slot]`` on RdYlGn fixed to [-1, 1]. Single-layer: the middle layer, min-max
normalised to [0, 1] on YlOrRd, with the raw range in the title; the panels before and after kNN filtering
share one scale (the range of both), so one colour is one cosine in both. The x axis is the cache slot; each
agent's prompt and latent-step segments are marked under it (after kNN filtering, a segment holds only
its kept slots).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from kvscope.mas.prompts import ROLE_NAMES

_PRETTY = {**ROLE_NAMES, "experts": "Experts"}
MULTI_CMAP = "RdYlGn"  # diverging, centred on 0
SINGLE_CMAP = "YlOrRd"


def transition_title(name: str) -> str:
    """``"planner_to_critic"`` -> ``"Planner → Critic"``."""
    prev, cur = name.split("_to_")
    return f"{_PRETTY.get(prev, prev)} → {_PRETTY.get(cur, cur)}"


def segments(labels: list[str]) -> list[tuple[str, int, int]]:
    """Runs of equal labels: ``(label, first_slot, end_slot)`` with ``end`` exclusive."""
    runs: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], i + 1)
        else:
            runs.append((label, i, i + 1))
    return runs


def minmax(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Scale ``[lo, hi]`` (default: the range of ``values``) to [0, 1]; all zeros when it is below 1e-8."""
    lo = float(values.min()) if lo is None else lo
    hi = float(values.max()) if hi is None else hi
    return np.zeros_like(values) if hi - lo < 1e-8 else (values - lo) / (hi - lo)


def _mark_segments(ax: Any, labels: list[str]) -> None:
    """Segment boundaries as dashed lines, segment names (e.g. "Planner prompt") on a top axis."""
    centers, names = [], []
    for label, start, end in segments(labels):
        if start:
            ax.axvline(start - 0.5, color="black", lw=0.7, ls="--")
        agent, kind = (label.split(":") + [""])[:2]
        pretty = _PRETTY.get(agent, agent)
        wide = end - start > 0.08 * len(labels)
        names.append(f"{pretty} {kind}" if wide else f"{pretty[:1]} {kind[:3]}")
        centers.append((start + end - 1) / 2)
    top = ax.secondary_xaxis("top")
    top.set_xticks(centers)
    top.set_xticklabels(names, fontsize=7)
    top.tick_params(length=0)


def _figure(n_slots: int, panel_height: float, panels: int) -> tuple[Any, list[Any]]:
    """A figure (not registered with pyplot) of ``panels`` stacked axes."""
    fig = Figure(figsize=(min(24.0, max(12.0, n_slots / 60)), panel_height * panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _xticks(ax: Any, n_slots: int) -> None:
    step = max(1, n_slots // 20)
    ax.set_xticks(range(0, n_slots, step))
    ax.set_xlabel("KV Cache Token Position (cache slot)")


def _panels(transition: Any) -> list[tuple[Any, str]]:
    """``(transition, caption)`` for the cache before kNN filtering (when recorded), then after."""
    if transition.before is None:
        return [(transition, "")]
    return [(transition.before, "before kNN filtering: "), (transition, "after kNN filtering: ")]


def heatmap_figure(transition: Any, problem: int) -> Any:
    """Multi-layer cosine heatmap of one transition (``similarity`` ``[layer, slot]``), colour limits
    fixed to [-1, 1] on a diverging map; with kNN filtering, the cache before it is drawn above."""
    panels = _panels(transition)
    n_layers = transition.similarity.shape[0]
    fig, axes = _figure(max(t.similarity.shape[1] for t, _ in panels), max(4.0, 0.18 * n_layers + 1.5), len(panels))
    for ax, (t, caption) in zip(axes, panels):
        sim = t.similarity.numpy()
        img = ax.imshow(sim, aspect="auto", cmap=MULTI_CMAP, vmin=-1, vmax=1, interpolation="nearest")
        fig.colorbar(img, ax=ax, label="Cosine Similarity")
        _xticks(ax, sim.shape[1])
        ax.set_yticks(range(n_layers))
        ax.tick_params(axis="y", labelsize=6 if n_layers > 16 else 8)
        ax.set_ylabel("Layer Index")
        _mark_segments(ax, t.labels)
        ax.set_title(
            f"Cosine Similarity Heatmap, {caption}{transition_title(t.name)}\n"
            f"Problem #{problem} | Layers: {n_layers} | Tokens: {sim.shape[1]}"
        )
    return fig


def singlelayer_figure(transition: Any, problem: int, layer: int) -> Any:
    """Similarity at ``layer`` (the middle layer: the one kNN filtering reads), min-max normalised to
    [0, 1], raw range in the title; with kNN filtering, the cache before it is drawn above, on the same
    scale (the range over both panels)."""
    panels = _panels(transition)
    fig, axes = _figure(max(t.similarity.shape[1] for t, _ in panels), 3.0, len(panels))
    lo = min(float(t.similarity[layer].min()) for t, _ in panels)
    hi = max(float(t.similarity[layer].max()) for t, _ in panels)
    scale = f"Normalized Similarity\n(0 = {lo:.3f}, 1 = {hi:.3f})" if len(panels) > 1 else "Normalized Similarity"
    for ax, (t, caption) in zip(axes, panels):
        raw = t.similarity[layer].numpy()
        shown = minmax(raw, lo, hi)[None, :]
        img = ax.imshow(shown, aspect="auto", cmap=SINGLE_CMAP, vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(img, ax=ax, label=scale)
        _xticks(ax, raw.shape[0])
        ax.set_yticks([0])
        ax.set_yticklabels([f"Middle Layer ({layer})"])
        _mark_segments(ax, t.labels)
        ax.set_title(
            f"Single-Layer Similarity, {caption}{transition_title(t.name)}\n"
            f"Problem #{problem} | Tokens: {raw.shape[0]} | Range: [{raw.min():.3f}, {raw.max():.3f}]"
        )
    return fig


def heatmap_figures(runs: list[Any], multi: bool, single: bool, n_layers: int) -> dict[str, Any]:
    """``{"heatmap_{transition}_problem{N}": Figure, "heatmap_singlelayer_...": Figure}`` for every run."""
    figures = {}
    for run in runs:
        n = run.problem.index
        for t in run.transitions:
            if multi:
                figures[f"heatmap_{t.name}_problem{n}"] = heatmap_figure(t, n)
            if single:
                figures[f"heatmap_singlelayer_{t.name}_problem{n}"] = singlelayer_figure(t, n, n_layers // 2)
    return figures
