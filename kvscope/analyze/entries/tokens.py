"""The token table (``kvscope.analyze.token_table``): per-token key and value norms, type, attention and
sink flag, read by five figures; over many prompts, the norms pooled by token type."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register

TOKENS_ONLY = "a view of one prompt's tokens; run with --prompt (or analyze one snapshot) to see it"


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.token_table import token_table

    return token_table(ctx.snapshot, ctx.results["sinks"], ctx.options.n_rank)


def _aggregate(results: list[Any]) -> dict[str, Any]:
    """Key and value norms of every token of every prompt, pooled by token type."""
    import numpy as np

    out: dict[str, dict[str, np.ndarray]] = {}
    for which in ("key_norm", "value_norm"):
        out[which] = {}
        for t in results:
            for ty, idx in t.by_type.items():
                vals = getattr(t, which)[idx]
                out[which][ty] = np.concatenate([out[which].get(ty, np.zeros(0)), vals])
    return {"type_norms": out}


LOW_IMPORTANCE_TOKENS = (
    "Left: every token by key and value norm; red crosses are those with the lowest magnitude, the tokens"
    " a magnitude rule would evict first. Right: the attention each of them actually receives, divided by "
    "the median of the tokens around its position (attention per seeing query favours the last tokens, "
    "which few queries see, each from close by; this ratio does not), against the median token. A cross "
    "that is an attention sink (orange) takes a large share of attention and "
    "must not be evicted: a low magnitude does not make it unimportant. Magnitudes are L2 norms of each "
    "token's key or value vector within one kv_head, averaged over layers and kv_heads. The L2 norm of a "
    "key does not change under RoPE (a rotation), so it describes the key itself, not where it sits."
)

TOKEN_IMPORTANCE_COMPARISON = (
    "The highest-magnitude (circles) and lowest-magnitude (crosses) tokens on key-norm x value-norm axes,"
    " coloured by the attention they receive. If magnitude meant importance, the circles would be bright "
    "and the crosses dark; where they are not, magnitude is the wrong proxy on this prompt. Magnitudes "
    "are L2 norms of each token's key or value vector within one kv_head, averaged over layers and "
    "kv_heads. The L2 norm of a key does not change under RoPE (a rotation), so it describes the key "
    "itself, not where it sits."
)

TOKEN_MAGNITUDE_DISTRIBUTIONS = (
    "Boxplots of key and value norms by token type: number, punctuation, stopword (kvscope's English "
    "function-word list), proper noun (capitalised, not sentence-initial), special/BOS, whitespace and "
    "other; the type is given per word, so every BPE piece of a word shares it. Boxes span the middle "
    "half, the line is the median, dots are outliers; n is how many tokens the type has in this prompt, "
    "and small n deserve little trust. Magnitudes are L2 norms of each token's key or value vector within"
    " one kv_head, averaged over layers and kv_heads. The L2 norm of a key does not change under RoPE (a "
    "rotation), so it describes the key itself, not where it sits."
)

TOKEN_MAGNITUDES = (
    "Top: key and value norm of every token by position, with attention sinks marked by orange lines. "
    "Bottom: the mean norm per token type, keys against values. The first tokens often carry unusual keys"
    " and near-zero values. Magnitudes are L2 norms of each token's key or value vector within one "
    "kv_head, averaged over layers and kv_heads. The L2 norm of a key does not change under RoPE (a "
    "rotation), so it describes the key itself, not where it sits."
)

TOKEN_KEY_VALUE_SCATTER = (
    "Every token placed by key norm (x) and value norm (y), coloured by position; the highest-magnitude "
    "tokens are labelled with their text and orange rings mark attention sinks. A diagonal cloud means "
    "key and value norms rise together. Magnitudes are L2 norms of each token's key or value vector "
    "within one kv_head, averaged over layers and kv_heads. The L2 norm of a key does not change under "
    "RoPE (a rotation), so it describes the key itself, not where it sits."
)


ANALYSIS = register(
    Analysis(
        name="tokens",
        compute=_compute,
        place=60,
        figures=(
            Figure(
                files=("low_importance_tokens",),
                draw=lazy("kvscope.analyze.figure_tokens:low_importance_tokens"),
                title="Low-magnitude tokens",
                explanation=LOW_IMPORTANCE_TOKENS,
                place=70,
                many_skip=TOKENS_ONLY,
            ),
            Figure(
                files=("token_importance_comparison",),
                draw=lazy("kvscope.analyze.figure_tokens:token_importance_comparison"),
                title="High vs low magnitude tokens",
                explanation=TOKEN_IMPORTANCE_COMPARISON,
                place=80,
                many_skip=TOKENS_ONLY,
            ),
            Figure(
                files=("token_magnitude_distributions",),
                draw=lazy("kvscope.analyze.figure_tokens:token_magnitude_distributions"),
                title="Magnitude by token type",
                explanation=TOKEN_MAGNITUDE_DISTRIBUTIONS,
                place=90,
                draw_many=lazy("kvscope.analyze.figure_many:token_types"),
            ),
            Figure(
                files=("token_magnitudes",),
                draw=lazy("kvscope.analyze.figure_tokens:token_magnitudes"),
                title="Magnitude by position",
                explanation=TOKEN_MAGNITUDES,
                place=100,
                many_skip=TOKENS_ONLY,
            ),
            Figure(
                files=("token_key_value_scatter",),
                draw=lazy("kvscope.analyze.figure_tokens:token_key_value_scatter"),
                title="Key vs value magnitude",
                explanation=TOKEN_KEY_VALUE_SCATTER,
                place=110,
                many_skip=TOKENS_ONLY,
            ),
        ),
        aggregate=_aggregate,
    )
)
