"""Head specialization of one layer: every q_head placed by features of its attention pattern.

The pattern is recomputed exactly from the captured post-RoPE queries and keys: for q_head ``h``
(reading kv_head ``h // group``, GQA), ``A = causal softmax(q k^T * d^-0.5)``. Features, averaged
over query positions ``i``:

- ``lookback``: mean distance ``sum_j A_ij (i - j)`` in tokens (local heads small, global heads large);
- ``entropy``: normalized entropy ``H(A_i) / log(i + 1)`` over queries ``i >= 1`` (0 = one key, 1 = uniform);
- ``first_share``: attention on the first position (the usual sink).

``parity`` is the largest relative difference between the recomputed attention received (summed over
each group) and the one recorded at capture time, a check that the recomputation matches the model
(NaN when the snapshot has no attention data). Assumes the model scales scores by ``d^-0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvscope.errors import KvscopeError
from kvscope.snapshot import KVSnapshot

QUERY_CHUNK = 512


@dataclass(frozen=True)
class HeadSpecialization:
    """Arrays ``[q_head]``; ``kv_head[h] = h // group``; ``received``: ``[q_head, position]``."""

    layer: int
    kv_head: np.ndarray
    lookback: np.ndarray
    entropy: np.ndarray
    first_share: np.ndarray
    received: np.ndarray
    parity: float
    features: str = "attention pattern recomputed from captured queries and keys"


def _head_features(q: torch.Tensor, k: torch.Tensor) -> tuple[float, float, float, np.ndarray]:
    """Features of one q_head: ``q``, ``k`` ``[P, head_dim]`` float32 (sums accumulated in float64)."""
    n = q.shape[0]
    look, ent, first = 0.0, 0.0, 0.0
    received = torch.zeros(n, dtype=torch.float64)
    for s in range(0, n, QUERY_CHUNK):
        qi = torch.arange(s, min(n, s + QUERY_CHUNK))
        scores = (q[qi] @ k.T) * q.shape[-1] ** -0.5
        scores = scores.masked_fill(torch.arange(n)[None, :] > qi[:, None], float("-inf"))
        a = scores.softmax(-1)
        received += a.sum(0, dtype=torch.float64)
        look += float((a * (qi[:, None] - torch.arange(n)[None, :]).clamp(min=0)).sum(dtype=torch.float64))
        h = -(a * torch.log(a.clamp(min=1e-30))).sum(-1, dtype=torch.float64)
        norm = torch.log(qi.double() + 1)
        ent += float(torch.where(qi > 0, h / norm.clamp(min=1e-300), torch.zeros_like(h)).sum())
        first += float(a[:, 0].sum(dtype=torch.float64))
    return look / n, ent / max(1, n - 1), first / n, received.numpy()


def head_specialization(snapshot: KVSnapshot, layer: int) -> HeadSpecialization:
    """Per-q_head attention features of ``layer``; needs captured queries and a full-length cache."""
    if snapshot.queries is None:
        raise KvscopeError("head specialization needs the captured queries (capture with queries)")
    q, k = snapshot.queries[layer].float(), snapshot.keys[layer].float()
    if k.shape[1] != q.shape[1]:
        raise KvscopeError(f"layer {layer} keeps a sliding window; head specialization needs every key")
    group = q.shape[0] // k.shape[0]
    feats = [_head_features(q[h], k[h // group]) for h in range(q.shape[0])]
    received = np.stack([f[3] for f in feats])
    parity = float("nan")
    if snapshot.has_attention:
        mine = received.reshape(k.shape[0], group, -1).sum(1)
        ref = snapshot.attention_received[layer].double().numpy()
        parity = float(np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-12))
    return HeadSpecialization(layer=layer, kv_head=np.arange(q.shape[0]) // group,
                              lookback=np.array([f[0] for f in feats]), entropy=np.array([f[1] for f in feats]),
                              first_share=np.array([f[2] for f in feats]), received=received, parity=parity)
