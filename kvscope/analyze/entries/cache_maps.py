"""Cache heatmaps (``kvscope.analyze.cache_maps``): |K| and |V| per layer, one figure; metrics.json keeps
their colour limits, not the pixels."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.cache_maps import cache_maps

    return cache_maps(ctx.snapshot)


def _metrics(result: Any) -> dict[str, Any]:
    return {
        "block": result.block,
        "vmax_k": result.vmax_k,
        "vmax_v": result.vmax_v,
        "rows": len(result.key[0]) if result.key else 0,
        "note": "pixel data not stored",
    }


KV_CACHE_LAYERS = (
    "One small heatmap per layer, keys on top and values below. Rows are token positions: every position "
    "gets its own pixel row up to 256 positions; longer prompts show the maximum |x| over blocks of "
    "positions (the title says how many), so a single large position never disappears. Columns are the "
    "kv_head x head_dim channels, and dashed lines separate kv_heads. By default each layer has its own "
    "colour scale (clipped at its 99.5th percentile), so quiet early layers are not black; --cache-scale "
    "shared puts all layers on one scale, and a log scale is used when one element exceeds the clip limit"
    " more than 20-fold (--cache-norm). A vertical stripe is a channel that is large for every token (an "
    "outlier channel, the reason keys are quantized per channel); a horizontal line is one position that "
    "stands out. On SmolLM2 the first token's key is smaller than average, not brighter: look before "
    "assuming."
)


ANALYSIS = register(
    Analysis(
        name="cache_maps",
        compute=_compute,
        place=20,
        figures=(
            Figure(
                files=("kv_cache_layers",),
                draw=lazy("kvscope.analyze.figure_layers:kv_cache_layers"),
                title="Layer-wise heatmaps",
                explanation=KV_CACHE_LAYERS,
                place=10,
                palette=True,
            ),
        ),
        to_metrics=_metrics,
    )
)
