"""Down-sampled |K| and |V| maps per layer for the cache heatmaps: positions x (kv_head*head_dim).

Long inputs are reduced to at most ``max_rows`` rows by averaging |x| over blocks of consecutive
positions (a mean of magnitudes, so a channel that is large everywhere still shows as a stripe).
The colour limit is shared by every layer: the ``percentile`` of all |x| of that kind, so a few
outlier channels saturate (and show as stripes) without washing out the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvscope.snapshot import KVSnapshot

MAX_ROWS = 256
PERCENTILE = 99.5


@dataclass(frozen=True)
class CacheMaps:
    """``key``/``value``: per layer ``[rows, kv_head*head_dim]`` block means of |x|; ``block``:
    positions per row; ``vmax_k``/``vmax_v``: shared colour limits; ``head_dim``, ``kv_heads``."""

    key: list[np.ndarray]
    value: list[np.ndarray]
    block: int
    vmax_k: float
    vmax_v: float
    head_dim: int
    kv_heads: int
    n_positions: int


def block_mean_abs(x: torch.Tensor, block: int) -> np.ndarray:
    """``x`` ``[kv_head, P, head_dim]`` -> ``[ceil(P/block), kv_head*head_dim]`` block means of |x|."""
    h, n, d = x.shape
    flat = x.abs().permute(1, 0, 2).reshape(n, h * d).double()
    rows = -(-n // block)
    pad = rows * block - n
    sums = torch.nn.functional.pad(flat, (0, 0, 0, pad)).reshape(rows, block, h * d).sum(1)
    counts = torch.full((rows, 1), float(block), dtype=torch.float64)
    counts[-1] = block - pad
    return (sums / counts).numpy()


def _limit(tensors: list[torch.Tensor]) -> float:
    allabs = torch.cat([t.abs().reshape(-1) for t in tensors])
    if allabs.numel() > 2_000_000:
        allabs = allabs[torch.linspace(0, allabs.numel() - 1, 2_000_000).long()]
    lim = float(torch.quantile(allabs.float(), PERCENTILE / 100))
    return lim if lim > 0 else float(allabs.max()) or 1.0


def cache_maps(snapshot: KVSnapshot, max_rows: int = MAX_ROWS) -> CacheMaps:
    """Heatmap data for every layer; see the module doc."""
    block = max(1, -(-snapshot.n_positions // max_rows))
    return CacheMaps(key=[block_mean_abs(t, block) for t in snapshot.keys],
                     value=[block_mean_abs(t, block) for t in snapshot.values], block=block,
                     vmax_k=_limit(snapshot.keys), vmax_v=_limit(snapshot.values),
                     head_dim=snapshot.keys[0].shape[-1], kv_heads=snapshot.keys[0].shape[0],
                     n_positions=snapshot.n_positions)
