"""Attention-sink detection (Xiao et al., ICLR 2024, "Efficient Streaming Language Models with
Attention Sinks").

A key position is a *sink in a layer* when the mean attention it receives per query that can see it
(averaged over kv_heads) is at least ``share`` (0.2 by default) and at least ``factor`` (3) times
what uniform causal attention would give it (the mean of ``1/(i+1)`` over the query positions ``i``
that see it). The second condition keeps short prompts, where every key gets a large share, from
flagging everything. A position is a *sink* when it is a sink in more than half of the layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.snapshot import KVSnapshot

DEFAULT_SINK_SHARE = 0.2
DEFAULT_SINK_FACTOR = 3.0


@dataclass(frozen=True)
class Sinks:
    """``positions``: indices of sink tokens; ``layer_share``: ``[layer, position]`` mean attention
    per seeing query; ``layer_flags``: ``[layer, position]`` bool. ``detected`` is False (and the
    arrays empty) when the snapshot has no attention data."""

    detected: bool
    positions: np.ndarray
    layer_share: np.ndarray
    layer_flags: np.ndarray
    share: float
    factor: float


def uniform_share(n: int) -> np.ndarray:
    """``[n]``: mean over query positions ``i >= j`` of ``1/(i+1)``, the uniform-attention share of key j."""
    inv = 1.0 / np.arange(1, n + 1, dtype=np.float64)
    tail = np.cumsum(inv[::-1])[::-1]
    return tail / (n - np.arange(n))


def detect_sinks(snapshot: KVSnapshot, share: float = DEFAULT_SINK_SHARE, factor: float = DEFAULT_SINK_FACTOR) -> Sinks:
    """Sink positions by the rule in the module doc; empty when there is no attention data."""
    if not snapshot.has_attention:
        empty = np.zeros((0, 0))
        return Sinks(False, np.zeros(0, dtype=np.int64), empty, empty.astype(bool), share, factor)
    layer_share = snapshot.mean_attention().double().mean(dim=1).numpy()  # [layer, position]
    flags = (layer_share >= share) & (layer_share >= factor * uniform_share(snapshot.n_positions))
    majority = flags.sum(axis=0) > flags.shape[0] / 2
    return Sinks(True, np.flatnonzero(majority), layer_share, flags, share, factor)
