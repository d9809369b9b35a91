"""Per-token L2 norms of keys and values, per layer and kv_head.

The L2 norm of a key is unchanged by RoPE (RoPE rotates channel pairs), so the post-RoPE keys held
in the cache give the same norms as the k_proj output; mean |x| (L1) would not have that property.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.snapshot import KVSnapshot


@dataclass(frozen=True)
class TokenNorms:
    """L2 norms, NaN where a layer's cache does not hold a position (sliding window).

    - ``key``, ``value``: ``[layer, kv_head, position]``.
    - ``key_token``, ``value_token``: ``[position]``, mean over layers and kv_heads (NaN ignored).
    """

    key: np.ndarray
    value: np.ndarray
    key_token: np.ndarray
    value_token: np.ndarray


def layer_norms(snapshot: KVSnapshot, which: str) -> np.ndarray:
    """``[layer, kv_head, position]`` L2 norms over head_dim of ``which`` ("keys" or "values")."""
    tensors = getattr(snapshot, which)
    n, heads = snapshot.n_positions, tensors[0].shape[0]
    out = np.full((snapshot.n_layers, heads, n), np.nan, dtype=np.float64)
    for layer, t in enumerate(tensors):
        norms = t.double().norm(dim=-1).numpy()
        out[layer, :, n - norms.shape[1] :] = norms
    return out


def token_norms(snapshot: KVSnapshot) -> TokenNorms:
    """Key and value L2 norms per layer, kv_head and position, and their per-token means."""
    k = layer_norms(snapshot, "keys")
    v = layer_norms(snapshot, "values")
    return TokenNorms(key=k, value=v, key_token=np.nanmean(k, axis=(0, 1)), value_token=np.nanmean(v, axis=(0, 1)))
