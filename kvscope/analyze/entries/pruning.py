"""Pruning potential (``kvscope.analyze.pruning_potential``): per layer and kv_head, 1 minus the
attention-weighted value norm over the largest; three figures."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.pruning_potential import pruning_potential

    return pruning_potential(ctx.snapshot)


PRUNING_HEATMAP_BY_LAYER_HEAD = (
    "Pruning potential of each layer and kv_head: 1 minus the head's attention-weighted value norm over "
    "the largest one. A head that looks mostly at tokens with small values (usually a sink) writes little"
    " into the model and scores near 1. It is a proxy from one prompt; when kvscope prune --scan has been"
    " run, the measured perplexity change of evicting each head is shown beside it, so you can see "
    "whether the score predicts it."
)

LAYER_PRUNING_POTENTIAL = (
    "The same score per layer (mean over its kv_heads). A tall bar is a layer whose heads write little; "
    "with a scan, the lower panel shows the perplexity change actually measured when the layer's cache is"
    " evicted, and the Spearman correlation between the two."
)

HEAD_PRUNING_POTENTIAL = (
    "Pruning potential by kv_head index: dots are single layers, the bar their mean. Head 2 of layer 3 "
    "and head 2 of layer 20 are unrelated heads that happen to share an index, so the bar is only a "
    "summary; decisions belong to the (layer, kv_head) heatmap."
)


ANALYSIS = register(
    Analysis(
        name="pruning",
        compute=_compute,
        place=70,
        figures=(
            Figure(
                files=("pruning_heatmap_by_layer_head",),
                draw=lazy("kvscope.analyze.figure_heads:pruning_heatmap_by_layer_head"),
                title="Pruning potential per head",
                explanation=PRUNING_HEATMAP_BY_LAYER_HEAD,
                place=130,
            ),
            Figure(
                files=("layer_pruning_potential",),
                draw=lazy("kvscope.analyze.figure_heads:layer_pruning_potential"),
                title="Pruning potential per layer",
                explanation=LAYER_PRUNING_POTENTIAL,
                place=140,
            ),
            Figure(
                files=("head_pruning_potential",),
                draw=lazy("kvscope.analyze.figure_heads:head_pruning_potential"),
                title="Pruning potential by head index",
                explanation=HEAD_PRUNING_POTENTIAL,
                place=150,
            ),
        ),
    )
)
