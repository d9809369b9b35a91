"""PCA by position (``kvscope.analyze.pca``): the chosen layer's per-position key and value vectors on their
first two principal components."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.entries.tokens import TOKENS_ONLY
from kvscope.analyze.registry import Analysis, Figure, lazy, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.pca import pca_by_position

    return pca_by_position(ctx.snapshot, ctx.options.layer)


KV_PCA_BY_POSITION = (
    "Each point is one position of the chosen layer: its key (left) or value (right) vector, with "
    "kv_heads concatenated, projected on the first two principal components; colour is position. Keys are"
    " post-RoPE as cached (values carry no RoPE), so a smooth colour gradient partly reflects position "
    "itself. Orange rings are attention sinks and black triangles special tokens; they often sit far from"
    " the rest."
)


ANALYSIS = register(
    Analysis(
        name="pca",
        compute=_compute,
        place=50,
        figures=(
            Figure(
                files=("kv_pca_by_position",),
                draw=lazy("kvscope.analyze.figure_tokens:kv_pca_by_position"),
                title="PCA by position",
                explanation=KV_PCA_BY_POSITION,
                place=40,
                needs=("tokens",),
                many_skip=TOKENS_ONLY,
            ),
        ),
    )
)
