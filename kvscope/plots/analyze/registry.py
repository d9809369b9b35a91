"""The registry of analyze figures: file names, the analyses each needs, how to read it.

``render_all`` draws every figure whose analyses are present (in a process pool when asked) and
returns, per figure, the files written or the reason it was skipped. A figure that fails to draw is
reported as skipped with the error; it never stops the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kvscope.plots.analyze import heads, layers, token_plots
from kvscope.plots.analyze.base import FigureData
from kvscope.plots.analyze.explanations import EXPLANATIONS


@dataclass(frozen=True)
class FigureSpec:
    """``files``: names without suffix (the same figure may be written under several names)."""

    files: tuple[str, ...]
    needs: tuple[str, ...]
    draw: Callable[[FigureData], object]
    title: str
    palette: bool = False  # PNG stored with a 256-colour palette (for figures drawn with <= ~200 colours)

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self.files[0]]


FIGURES: dict[str, FigureSpec] = {s.files[0]: s for s in (
    FigureSpec(("kv_cache_layers",), ("cache_maps",), layers.kv_cache_layers, "Layer-wise heatmaps", palette=True),
    FigureSpec(("kv_cache_statistics", "layer_statistics"), ("layer_stats",), layers.layer_statistics,
               "Layer statistics"),
    FigureSpec(("kv_value_distribution",), ("distribution",), layers.kv_value_distribution, "Value distribution"),
    FigureSpec(("kv_pca_by_position",), ("pca", "tokens"), token_plots.kv_pca_by_position, "PCA by position"),
    FigureSpec(("head_specialization",), ("heads",), heads.head_specialization, "Head specialization"),
    FigureSpec(("kv_quantization_error",), ("quantization",), layers.kv_quantization_error, "Quantization error"),
    FigureSpec(("low_importance_tokens",), ("tokens",), token_plots.low_importance_tokens, "Low-magnitude tokens"),
    FigureSpec(("token_importance_comparison",), ("tokens",), token_plots.token_importance_comparison,
               "High vs low magnitude tokens"),
    FigureSpec(("token_magnitude_distributions",), ("tokens",), token_plots.token_magnitude_distributions,
               "Magnitude by token type"),
    FigureSpec(("token_magnitudes",), ("tokens",), token_plots.token_magnitudes, "Magnitude by position"),
    FigureSpec(("token_key_value_scatter",), ("tokens",), token_plots.token_key_value_scatter,
               "Key vs value magnitude"),
    FigureSpec(("head_sparsity",), ("layer_stats",), layers.head_sparsity, "Sparsity per head"),
    FigureSpec(("pruning_heatmap_by_layer_head",), ("pruning",), heads.pruning_heatmap_by_layer_head,
               "Pruning potential per head"),
    FigureSpec(("layer_pruning_potential",), ("pruning",), heads.layer_pruning_potential,
               "Pruning potential per layer"),
    FigureSpec(("head_pruning_potential",), ("pruning",), heads.head_pruning_potential,
               "Pruning potential by head index"),
    FigureSpec(("weight_magnitude_distribution",), ("weights",), heads.weight_magnitude_distribution,
               "Projection weights"),
    FigureSpec(("importance_validation",), ("importance",), token_plots.importance_validation,
               "Importance proxies vs attention"),
)}


def _encode(fig, fmt: str, palette: bool) -> bytes:
    """The figure's file bytes; with ``palette`` a PNG is reduced to 256 colours."""
    import io

    from kvscope.plots.common import DPI

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight")
    if not (palette and fmt == "png"):
        return buf.getvalue()
    from PIL import Image

    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=256)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_one(name: str, data: FigureData, out: Path, fmt: str) -> list[str]:
    """Draw figure ``name`` and save it (atomically) under each of its file names; returns the paths."""
    from kvscope.fileio import write_bytes
    from kvscope.plots.common import plt

    spec = FIGURES[name]
    fig = spec.draw(data)
    try:
        payload = _encode(fig, fmt, spec.palette)
    finally:
        plt.close(fig)
    return [str(write_bytes(out / f"{stem}.{fmt}", payload)) for stem in spec.files]


def missing_needs(name: str, data: FigureData, notes: dict[str, str]) -> str | None:
    """Why figure ``name`` cannot be drawn (its analysis was skipped), else None."""
    for need in FIGURES[name].needs:
        if need not in data.results:
            return notes.get(need, f"analysis {need!r} did not run")
    return None


def render_all(data: FigureData, out: Path, fmt: str = "png", notes: dict[str, str] | None = None,
               jobs: int = 1) -> dict[str, dict]:
    """Draw every figure; ``{name: {"files": [...]} or {"skipped": reason}}`` in registry order."""
    notes = notes or {}
    status: dict[str, dict] = {}
    todo = []
    for name in FIGURES:
        why = missing_needs(name, data, notes)
        if why:
            status[name] = {"skipped": why}
        else:
            todo.append(name)
    if jobs > 1 and len(todo) > 1:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {name: pool.submit(render_one, name, data, out, fmt) for name in todo}
            results = {name: _outcome(f.result) for name, f in futures.items()}
    else:
        results = {name: _outcome(lambda n=name: render_one(n, data, out, fmt)) for name in todo}
    status.update(results)
    return {name: status[name] for name in FIGURES}


def _outcome(call) -> dict:
    from kvscope.errors import UsageError

    try:
        return {"files": call()}
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - one figure's failure must not stop the report
        return {"skipped": f"failed to draw: {type(exc).__name__}: {exc}"}
