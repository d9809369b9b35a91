"""Head specialization in every layer: each q_head described by its recomputed attention pattern.

The pattern is recomputed from the captured post-RoPE queries and keys with the one attention helper
(``kvscope.attention.causal_probs``) and the model's own score scale (``kvscope.analyze.attention_spec``):
for q_head ``h`` (reading kv_head ``h // group``, GQA), ``A = causal softmax(q k^T * scaling)``.

The *sink positions* ``S`` are the detected attention sinks (``kvscope.analyze.sinks``), or position 0
when none is detected. Features are averaged over the queries ``i`` that can see at least one earlier
non-sink key (the others have nothing to look back at):

- ``sink_share``: ``sum_{j in S} A_ij``, the attention mass on the sinks;
- ``lookback``: the mean distance of the NON-SINK attention, ``sum_{j not in S} A_ij (i - j) /
  sum_{j not in S} A_ij`` in tokens (queries whose non-sink mass is 0 are left out). Measured on all
  attention instead, a head that parks mass on position 0 would look far back only because of the sink;
- ``entropy``: normalized entropy ``H(A_i) / log(i + 1)`` (0 = one key, 1 = uniform).

``parity`` is the largest relative difference, over the layers, between the recomputed attention
received (summed over each group) and the one recorded at capture (NaN without attention data, or when
no layer could be recomputed).

A sliding-window layer (Mistral, Gemma 2/3's alternate layers) is skipped: its cache holds only the last
``window - 1`` positions, too few to recompute the attention of the prompt's queries. The scatter view
then shows the nearest layer that holds every position (``layer``; ``requested`` is the one asked for);
with none (every layer windowed) nothing is recomputed and nothing is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvscope.analyze.attention_spec import AttentionSpec, attention_spec
from kvscope.attention import causal_probs
from kvscope.errors import KvscopeError
from kvscope.snapshot import KVSnapshot

QUERY_CHUNK = 256


@dataclass(frozen=True)
class HeadSpecialization:
    """``lookback``, ``sink_share``, ``entropy``: ``[layer, q_head]`` (NaN for a sliding-window layer);
    ``kv_head[h] = h // group``; ``layer``: the layer the scatter view shows (the nearest full layer to
    ``requested``; None when every layer is windowed); ``sinks``: ``S``; ``skipped_layers``: the windowed
    layers, not recomputed."""

    layer: int | None
    kv_head: np.ndarray
    lookback: np.ndarray
    sink_share: np.ndarray
    entropy: np.ndarray
    sinks: list[int]
    parity: float
    scaling_source: str
    skipped_layers: list[int]
    requested: int | None = None


def pattern_features(a: torch.Tensor, sinks: list[int], offset: int = 0) -> np.ndarray:
    """Sums over queries of ``a`` ``[q, k]`` (rows = queries ``offset..offset+q-1``): returns
    ``[lookback_sum, lookback_n, sink_sum, entropy_sum, n]`` over the eligible queries (module doc)."""
    a = a.double()
    q, k = a.shape
    qi = torch.arange(offset, offset + q, dtype=torch.float64)[:, None]
    dist = (qi - torch.arange(k, dtype=torch.float64)[None, :]).clamp(min=0)
    is_sink = torch.zeros(k, dtype=torch.bool)
    is_sink[[s for s in sinks if s < k]] = True
    earlier_free = (~is_sink[None, :]) & (torch.arange(k)[None, :] < qi)  # earlier non-sink keys
    eligible = earlier_free.any(1)
    free = a.masked_fill(is_sink[None, :], 0.0)
    mass = free.sum(1)
    look = (free * dist).sum(1) / mass.clamp(min=1e-300)
    has_look = eligible & (mass > 1e-12)
    h = -(a * torch.log(a.clamp(min=1e-300))).sum(1) / torch.log(qi[:, 0] + 1).clamp(min=1e-300)
    return np.array(
        [
            float(look[has_look].sum()),
            float(has_look.sum()),
            float((1 - mass)[eligible].sum()),
            float(h[eligible].sum()),
            float(eligible.sum()),
        ]
    )


def _layer(q: torch.Tensor, k: torch.Tensor, scaling: float, softcap, sinks: list[int]):
    """``[q_head, 5]`` feature sums and ``[q_head, k]`` received for one layer."""
    n = q.shape[1]
    sums = np.zeros((q.shape[0], 5))
    received = torch.zeros(q.shape[0], n, dtype=torch.float64)
    for s in range(0, n, QUERY_CHUNK):
        e = min(n, s + QUERY_CHUNK)
        a = causal_probs(q[:, s:e], k[:, :e], scaling, softcap)  # [q_head, e-s, e]
        received[:, :e] += a.sum(1, dtype=torch.float64)
        for h in range(q.shape[0]):
            sums[h] += pattern_features(a[h], sinks, s)
    return sums, received


def head_specialization(
    snapshot: KVSnapshot, layer: int, sinks: list[int] | None = None, spec: AttentionSpec | None = None
) -> HeadSpecialization:
    """Per-(layer, q_head) features; ``layer`` picks the scatter view. Needs captured queries."""
    if snapshot.queries is None:
        raise KvscopeError("head specialization needs the captured queries (capture with queries)")
    spec = spec or attention_spec(snapshot)
    sinks = sorted(int(s) for s in sinks) if sinks else [0]
    L, hq = snapshot.n_layers, snapshot.queries[0].shape[0]
    look, share, ent = (np.full((L, hq), np.nan) for _ in range(3))
    parity, skipped = 0.0, []
    for l in range(L):
        q, k = snapshot.queries[l].float(), snapshot.keys[l].float()
        if k.shape[1] != q.shape[1]:
            skipped.append(l)
            continue
        sums, received = _layer(q, k, spec.scaling[l], spec.softcap, sinks)
        with np.errstate(all="ignore"):
            look[l], share[l], ent[l] = sums[:, 0] / sums[:, 1], sums[:, 2] / sums[:, 4], sums[:, 3] / sums[:, 4]
        if snapshot.has_attention:
            mine = received.reshape(k.shape[0], hq // k.shape[0], -1).sum(1).numpy()
            ref = snapshot.attention_received[l].double().numpy()
            parity = max(parity, float(np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-12)))
    full = [l for l in range(L) if l not in skipped]
    return HeadSpecialization(
        layer=min(full, key=lambda l: (abs(l - layer), l)) if full else None,
        kv_head=np.arange(hq) // (hq // snapshot.keys[0].shape[0]),
        lookback=look,
        sink_share=share,
        entropy=ent,
        sinks=sinks,
        parity=parity if snapshot.has_attention and full else float("nan"),
        scaling_source=spec.source,
        skipped_layers=skipped,
        requested=layer,
    )
