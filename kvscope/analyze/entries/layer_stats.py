"""Layer statistics (``kvscope.analyze.layer_stats``): sparsity, scale and K-V correlation per layer and
kv_head; over many prompts, the per-layer curves with bootstrap bands."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register

STATS = ("std_k", "std_v", "mean_abs_k", "mean_abs_v", "kv_norm_spearman")


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.layer_stats import layer_stats

    return layer_stats(ctx.snapshot, ctx.options.sparsity_threshold)


def _aggregate(results: list[Any]) -> dict[str, Any]:
    from kvscope.analyze.many import bands

    return {"layer_bands": {name: bands([getattr(s, name) for s in results]) for name in STATS}}


KV_CACHE_STATISTICS = (
    "Four panels across layers, keys in blue and values in red. (a) Sparsity is the share of elements "
    "with |x| below the threshold: the cache is dense, so values near 0 % are expected and mean there is "
    "nothing to skip. (b) K-V correlation is the Spearman rank correlation, over positions, between each "
    "token's key norm and value norm in the same kv_head, averaged over kv_heads: +1 means tokens with "
    "large keys also have large values. (c) and (d) are the standard deviation and mean |x| of all "
    "elements of the layer, a measure of scale, not of importance."
)

HEAD_SPARSITY = (
    "Share of elements with |x| below the threshold, for each layer and kv_head, keys and values. The "
    "colour scale runs to the largest share, printed in the title; on a dense cache that maximum is tiny,"
    " which is itself the finding: there are no zero heads to skip."
)


ANALYSIS = register(
    Analysis(
        name="layer_stats",
        compute=_compute,
        place=30,
        figures=(
            Figure(
                files=("kv_cache_statistics", "layer_statistics"),
                draw=lazy("kvscope.analyze.figure_layers:layer_statistics"),
                title="Layer statistics",
                explanation=KV_CACHE_STATISTICS,
                place=20,
                draw_many=lazy("kvscope.analyze.figure_many:layer_statistics"),
            ),
            Figure(
                files=("head_sparsity",),
                draw=lazy("kvscope.analyze.figure_layers:head_sparsity"),
                title="Sparsity per head",
                explanation=HEAD_SPARSITY,
                place=120,
            ),
        ),
        aggregate=_aggregate,
    )
)
