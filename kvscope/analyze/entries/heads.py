"""Head specialization (``kvscope.analyze.head_specialization``): per query head, the attention share on the
sinks and the look-back of the rest, recomputed from the captured queries with the model's own scale;
over many prompts, both per layer with bootstrap bands."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.attention_spec import attention_spec
    from kvscope.analyze.head_specialization import head_specialization

    sinks = ctx.results.get("sinks")
    found = sinks.positions.tolist() if sinks is not None and sinks.detected else None
    return head_specialization(ctx.snapshot, ctx.options.layer, found, attention_spec(ctx.snapshot, ctx.model))


def _aggregate(results: list[Any]) -> dict[str, Any]:
    from kvscope.analyze.many import bands
    from kvscope.stats import nanmean_or_nan

    return {
        "layer_bands": {
            "lookback": bands([nanmean_or_nan(h.lookback, axis=1) for h in results]),
            "sink_share": bands([nanmean_or_nan(h.sink_share, axis=1) for h in results]),
        }
    }


HEAD_SPECIALIZATION = (
    "Each point on the left is a query head of the chosen layer: x is the share of its attention that "
    "goes to the attention sinks (detected sinks, or position 0), y is how far back its remaining, non-"
    "sink attention looks on average (in tokens). Measured on all attention, look-back mostly repeats the"
    " sink share, because the sink is the farthest token; separating them shows which heads are local and"
    " which read far. Colour groups the query heads that share one kv_head (GQA). The two heatmaps give "
    "the same two numbers for every layer and query head. Attention is recomputed from the captured "
    "queries and keys with the model's own score scale; the title says how closely it matches the "
    "captured attention. A sliding-window layer is left blank: its cache holds only the last window - 1 "
    "keys, too few to recompute the prompt's attention, so the scatter shows the nearest full layer (and "
    "nothing is claimed when every layer is windowed)."
)


ANALYSIS = register(
    Analysis(
        name="heads",
        compute=_compute,
        place=90,
        needs=("queries",),
        figures=(
            Figure(
                files=("head_specialization",),
                draw=lazy("kvscope.analyze.figure_heads:head_specialization"),
                title="Head specialization",
                explanation=HEAD_SPECIALIZATION,
                place=50,
                draw_many=lazy("kvscope.analyze.figure_many:head_specialization"),
            ),
        ),
        aggregate=_aggregate,
    )
)
