"""Pruning potential of each layer and kv_head: how little the head's values can add to its output.

Score. For a kv_head ``h`` of layer ``l``, let ``a_ij`` be the softmax weight query ``i`` (of any
q_head in ``h``'s GQA group) gives key ``j``. The head's output for query ``i`` is
``o_i = sum_j a_ij v_j``, so by the triangle inequality ``||o_i|| <= sum_j a_ij ||v_j||``. Averaged
over all queries this bound is the *attention-weighted value norm*

    c[l, h] = sum_j R[l, h, j] ||v[l, h, j]|| / sum_j R[l, h, j],

where ``R`` is the attention received by each key (the H2O accumulated-attention score, Zhang et al.
2023; weighting value norms by attention follows VATP, Guo et al. 2024). A head that sends its
attention to tokens with small values (typically an attention sink, whose value is near zero) writes
little into the residual stream. The pruning potential is ``1 - c / max(c)`` over all (layer,
kv_head) pairs: 1 = contributes nothing, 0 = the largest contributor. A layer's potential uses the
mean ``c`` of its kv_heads. Without attention data the fallback weights every key uniformly
(``c`` = mean value norm), which ignores where the heads actually look.

This is a proxy from one prompt, not a measurement: ``kvscope prune --scan`` measures the perplexity
change of evicting each layer or head, and ``kvscope analyze`` shows both side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.analyze.magnitudes import layer_norms
from kvscope.snapshot import KVSnapshot

DEFINITION_ATTENTION = (
    "1 - c/max(c), c = attention-weighted mean value L2 norm of the kv_head "
    "(sum_j A_j ||v_j|| / sum_j A_j, A = attention received); 1 = writes least"
)
DEFINITION_FALLBACK = (
    "1 - c/max(c), c = mean value L2 norm of the kv_head (no attention captured: "
    "every key weighted uniformly); 1 = smallest values"
)


@dataclass(frozen=True)
class PruningPotential:
    """``layer``: ``[layer]``; ``head``: ``[layer, kv_head]``; both in [0, 1], higher = safer to prune.

    ``contribution``: ``[layer, kv_head]``, the attention-weighted value norm ``c`` (same units as a
    value vector). ``uses_attention`` says whether attention received weighted the values.
    """

    layer: np.ndarray
    head: np.ndarray
    definition: str
    contribution: np.ndarray
    uses_attention: bool


def head_contribution(snapshot: KVSnapshot) -> tuple[np.ndarray, bool]:
    """``[layer, kv_head]`` attention-weighted (or, without attention, plain) mean value norm."""
    vnorm = layer_norms(snapshot, "values")
    held = np.isfinite(vnorm)
    if snapshot.has_attention:
        weights = snapshot.attention_received.double().numpy()
    else:
        weights = np.ones_like(vnorm)
    weights = np.where(held, weights, 0.0)
    total = weights.sum(axis=-1)
    weighted = np.where(held, vnorm * weights, 0.0).sum(axis=-1)
    return weighted / np.where(total > 0, total, 1.0), snapshot.has_attention


def pruning_potential(snapshot: KVSnapshot) -> PruningPotential:
    """The documented pruning-potential score per layer and per (layer, kv_head); see the module doc."""
    c, used = head_contribution(snapshot)
    top = c.max() if c.size and c.max() > 0 else 1.0
    layer_c = c.mean(axis=1)
    layer_top = layer_c.max() if layer_c.size and layer_c.max() > 0 else 1.0
    return PruningPotential(
        layer=1.0 - layer_c / layer_top,
        head=1.0 - c / top,
        definition=DEFINITION_ATTENTION if used else DEFINITION_FALLBACK,
        contribution=c,
        uses_attention=used,
    )
