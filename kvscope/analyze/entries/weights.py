"""Projection weights (``kvscope.analyze.weights``): histograms of |k_proj| and |v_proj| over all layers; the
same for every prompt, so a many-prompt run leaves them out."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, plain, register

WEIGHTS_ONLY = (
    "the projection weights are the same for every prompt, so a many-prompt run does not repeat them; "
    "run with --prompt to see them"
)


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.weights import projection_weights, weight_magnitudes

    return weight_magnitudes(*projection_weights(ctx.model))


def _metrics(result: Any) -> dict[str, Any]:
    return {"k_proj": plain(result.k_proj), "v_proj": plain(result.v_proj)}


WEIGHT_MAGNITUDE_DISTRIBUTION = (
    "Histograms of the absolute k_proj and v_proj weights over all layers, on log axes. They show the "
    "scale and tail of the projections that produce the cache; weights near zero are not the same as "
    "cache entries near zero. For the embedded model the weights come from a 4-bit GGUF file (at most 16 "
    "distinct values per block of 32 weights), so the histogram shows that quantization grid, not the "
    "trained full-precision weights."
)


ANALYSIS = register(
    Analysis(
        name="weights",
        compute=_compute,
        place=110,
        needs=("model",),
        figures=(
            Figure(
                files=("weight_magnitude_distribution",),
                draw=lazy("kvscope.analyze.figure_heads:weight_magnitude_distribution"),
                title="Projection weights",
                explanation=WEIGHT_MAGNITUDE_DISTRIBUTION,
                place=160,
                many_skip=WEIGHTS_ONLY,
            ),
        ),
        to_metrics=_metrics,
    )
)
