"""The registry of analyze figures: file names, the analyses each needs, how to draw it from one
prompt (``draw``) and from many (``draw_many``, absent for views that only make sense on one prompt),
and how to read it (``explanation``). Counts anywhere come from ``FIGURES``.

``draw_figures`` returns ``matplotlib.figure.Figure`` objects made without pyplot; ``encode`` turns
one into file bytes. A figure that fails to draw is reported as skipped with the error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvscope.analyze import figure_heads as heads
from kvscope.analyze import figure_layers as layers
from kvscope.analyze import figure_many as aggregate
from kvscope.analyze import figure_tokens as token_plots
from kvscope.analyze.explanations import EXPLANATIONS
from kvscope.analyze.figure_base import FigureData

SINGLE_ONLY = "drawn for one prompt only; run with --prompt (or analyze one snapshot) to see it"
TOKENS_ONLY = "a view of one prompt's tokens; run with --prompt (or analyze one snapshot) to see it"
WEIGHTS_ONLY = (
    "the projection weights are the same for every prompt, so a many-prompt run does not repeat them; "
    "run with --prompt to see them"
)


@dataclass(frozen=True)
class FigureSpec:
    """``files``: names without suffix (the same figure may be written under several names)."""

    files: tuple[str, ...]
    needs: tuple[str, ...]
    draw: Callable[[FigureData], object]
    title: str
    explanation: str
    draw_many: Callable[[FigureData], object] | None = None
    palette: bool = False  # PNG stored with a 256-colour palette (for figures drawn with <= ~200 colours)
    many_skip: str = SINGLE_ONLY  # why a many-prompt run skips it (when there is no draw_many)


def _spec(files, needs, draw, title, draw_many=None, palette=False) -> FigureSpec:
    why = WEIGHTS_ONLY if needs == ("weights",) else TOKENS_ONLY if "tokens" in needs else SINGLE_ONLY
    return FigureSpec(files, needs, draw, title, EXPLANATIONS[files[0]], draw_many, palette, why)


FIGURES: dict[str, FigureSpec] = {
    s.files[0]: s
    for s in (
        _spec(("kv_cache_layers",), ("cache_maps",), layers.kv_cache_layers, "Layer-wise heatmaps", palette=True),
        _spec(
            ("kv_cache_statistics", "layer_statistics"),
            ("layer_stats",),
            layers.layer_statistics,
            "Layer statistics",
            aggregate.layer_statistics,
        ),
        _spec(("kv_value_distribution",), ("distribution",), layers.kv_value_distribution, "Value distribution"),
        _spec(("kv_pca_by_position",), ("pca", "tokens"), token_plots.kv_pca_by_position, "PCA by position"),
        _spec(
            ("head_specialization",),
            ("heads",),
            heads.head_specialization,
            "Head specialization",
            aggregate.head_specialization,
        ),
        _spec(
            ("kv_quantization_error",),
            ("quantization",),
            layers.kv_quantization_error,
            "Quantization error",
            aggregate.quantization,
        ),
        _spec(("low_importance_tokens",), ("tokens",), token_plots.low_importance_tokens, "Low-magnitude tokens"),
        _spec(
            ("token_importance_comparison",),
            ("tokens",),
            token_plots.token_importance_comparison,
            "High vs low magnitude tokens",
        ),
        _spec(
            ("token_magnitude_distributions",),
            ("tokens",),
            token_plots.token_magnitude_distributions,
            "Magnitude by token type",
            aggregate.token_types,
        ),
        _spec(("token_magnitudes",), ("tokens",), token_plots.token_magnitudes, "Magnitude by position"),
        _spec(("token_key_value_scatter",), ("tokens",), token_plots.token_key_value_scatter, "Key vs value magnitude"),
        _spec(("head_sparsity",), ("layer_stats",), layers.head_sparsity, "Sparsity per head"),
        _spec(
            ("pruning_heatmap_by_layer_head",),
            ("pruning",),
            heads.pruning_heatmap_by_layer_head,
            "Pruning potential per head",
        ),
        _spec(("layer_pruning_potential",), ("pruning",), heads.layer_pruning_potential, "Pruning potential per layer"),
        _spec(
            ("head_pruning_potential",), ("pruning",), heads.head_pruning_potential, "Pruning potential by head index"
        ),
        _spec(
            ("weight_magnitude_distribution",), ("weights",), heads.weight_magnitude_distribution, "Projection weights"
        ),
        _spec(
            ("importance_validation",),
            ("importance",),
            token_plots.importance_validation,
            "Importance proxies vs references",
            aggregate.importance,
        ),
    )
}


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
    for name, spec in FIGURES.items():
        why = missing_needs(name, data, notes, many)
        if why:
            skipped[name] = why
            continue
        try:
            figures[name] = (spec.draw_many if many else spec.draw)(data)
        except Exception as exc:
            skipped[name] = f"failed to draw: {type(exc).__name__}: {exc}"
    return figures, skipped
