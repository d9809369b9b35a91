"""Heatmaps of the incoming agent's query against the shared cache, one per agent transition.

Multi-layer: cosine ``[layer, slot]`` on RdYlGn fixed to [-1, 1]. Single-layer: the middle layer, min-max
normalised to [0, 1] on YlOrRd, with the raw range in the title. The x axis is the cache slot; each
agent's prompt and latent-step segments are marked under it (after kNN filtering, a segment holds only
its kept slots).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kvscope.plots.common import plt, save_figure

_PRETTY = {"planner": "Planner", "critic": "Critic", "refiner": "Refiner", "judger": "Judger"}


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


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; all zeros when the range is below 1e-8."""
    lo, hi = float(values.min()), float(values.max())
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


def _axes(n_slots: int, height: float) -> tuple[Any, Any]:
    return plt.subplots(figsize=(min(24.0, max(12.0, n_slots / 60)), height))


def _xticks(ax: Any, n_slots: int) -> None:
    step = max(1, n_slots // 20)
    ax.set_xticks(range(0, n_slots, step))
    ax.set_xlabel("KV Cache Token Position (cache slot)")


def heatmap_figure(transition: Any, problem: int) -> Any:
    """Multi-layer cosine heatmap of one transition (``transition.similarity`` ``[layer, slot]``)."""
    sim = transition.similarity.numpy()
    n_layers, n_slots = sim.shape
    fig, ax = _axes(n_slots, max(4.0, 0.18 * n_layers + 1.5))
    img = ax.imshow(sim, aspect="auto", cmap="RdYlGn", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(img, ax=ax, label="Cosine Similarity")
    _xticks(ax, n_slots)
    ax.set_yticks(range(n_layers))
    ax.tick_params(axis="y", labelsize=6 if n_layers > 16 else 8)
    ax.set_ylabel("Layer Index")
    _mark_segments(ax, transition.labels)
    ax.set_title(f"Cosine Similarity Heatmap: {transition_title(transition.name)}\n"
                 f"Problem #{problem} | Layers: {n_layers} | Tokens: {n_slots}")
    return fig


def singlelayer_figure(transition: Any, problem: int, layer: int) -> Any:
    """Middle-layer similarity, min-max normalised to [0, 1], raw range in the title."""
    raw = transition.similarity[layer].numpy()
    fig, ax = _axes(raw.shape[0], 3.0)
    img = ax.imshow(minmax(raw)[None, :], aspect="auto", cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(img, ax=ax, label="Normalized Similarity")
    _xticks(ax, raw.shape[0])
    ax.set_yticks([0])
    ax.set_yticklabels([f"Middle Layer ({layer})"])
    _mark_segments(ax, transition.labels)
    ax.set_title(f"Single-Layer Similarity: {transition_title(transition.name)}\n"
                 f"Problem #{problem} | Tokens: {raw.shape[0]} | Range: [{raw.min():.3f}, {raw.max():.3f}]")
    return fig


def save_heatmaps(runs: list[Any], charts: Path, multi: bool, single: bool, n_layers: int) -> list[Path]:
    """``heatmap_{transition}_problem{N}.png`` and/or ``heatmap_singlelayer_...`` for every run and transition."""
    from kvscope.fileio import ensure_dir

    if not (multi or single) or not any(r.transitions for r in runs):
        return []
    ensure_dir(charts)
    written = []
    for run in runs:
        n = run.problem.index
        for t in run.transitions:
            if multi:
                written.append(save_figure(heatmap_figure(t, n), charts / f"heatmap_{t.name}_problem{n}.png"))
            if single:
                written.append(save_figure(singlelayer_figure(t, n, n_layers // 2),
                                           charts / f"heatmap_singlelayer_{t.name}_problem{n}.png"))
    return written
