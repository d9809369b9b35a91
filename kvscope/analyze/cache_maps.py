"""|K| and |V| maps per layer for the cache heatmaps: positions x (kv_head*head_dim).

Every position is shown: up to ``max_rows`` positions each get their own row (the figure is sized so
each row gets at least one pixel row). Longer inputs are aggregated explicitly into blocks of ``block``
consecutive positions with the **maximum** of |x| over the block (so a single large position still
shows; the figure's label says "max |x| over blocks of N positions").

Colour limits: ``vmax_k``/``vmax_v`` are shared by all layers; ``layer_vmax_k``/``layer_vmax_v`` are
per layer (each the ``percentile`` of that layer's |x|), for the per-layer colour scale. Clipping at a
percentile keeps one dominant token or channel from washing out the rest; ``dominance`` says how far
the largest element exceeds the limit (the figure switches to a log scale when asked or when it is > 20).
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
    """``key``/``value``: per layer ``[rows, kv_head*head_dim]`` |x| (row = one position, or the max over
    a block of ``block`` positions); colour limits shared and per layer; ``dominance``: max |x| / limit."""

    key: list[np.ndarray]
    value: list[np.ndarray]
    block: int
    vmax_k: float
    vmax_v: float
    layer_vmax_k: list[float]
    layer_vmax_v: list[float]
    dominance: float
    head_dim: int
    kv_heads: int
    n_positions: int


def block_max_abs(x: torch.Tensor, block: int) -> np.ndarray:
    """``x`` ``[kv_head, P, head_dim]`` -> ``[ceil(P/block), kv_head*head_dim]``: max |x| per block of rows."""
    h, n, d = x.shape
    flat = x.abs().permute(1, 0, 2).reshape(n, h * d).float()
    rows = -(-n // block)
    pad = rows * block - n
    padded = torch.nn.functional.pad(flat, (0, 0, 0, pad))  # zeros never win a max of |x|
    return padded.reshape(rows, block, h * d).amax(1).numpy()


def _limit(tensors: list[torch.Tensor]) -> float:
    allabs = torch.cat([t.abs().reshape(-1) for t in tensors])
    if allabs.numel() > 2_000_000:
        allabs = allabs[torch.linspace(0, allabs.numel() - 1, 2_000_000).long()]
    lim = float(quantile(allabs.float(), PERCENTILE / 100))
    return lim if lim > 0 else float(allabs.max()) or 1.0


def quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile(x, q)`` of a flat finite tensor, bit for bit (linear interpolation, the rank
    ``q * (n - 1)`` computed in ``x``'s dtype as torch does), from the two order statistics around the rank
    (``kthvalue``, linear time) instead of a full sort: 12x faster on the 1.6 million |K| of a default run."""
    n = x.numel()
    if n < 2 or not bool(torch.isfinite(x).all()):
        return torch.quantile(x, q)
    rank = torch.tensor(q, dtype=x.dtype) * (n - 1)
    below = rank.to(torch.long)
    above = rank.ceil().to(torch.long)
    low = torch.kthvalue(x, int(below) + 1).values
    high = low if int(above) == int(below) else torch.kthvalue(x, int(above) + 1).values
    return torch.lerp(low, high, rank - below)


def cache_maps(snapshot: KVSnapshot, max_rows: int = MAX_ROWS) -> CacheMaps:
    """Heatmap data for every layer; see the module doc."""
    block = max(1, -(-snapshot.n_positions // max_rows))
    vk, vv = _limit(snapshot.keys), _limit(snapshot.values)
    top = max(
        float(max(t.abs().max() for t in snapshot.keys)) / vk, float(max(t.abs().max() for t in snapshot.values)) / vv
    )
    return CacheMaps(
        key=[block_max_abs(t, block) for t in snapshot.keys],
        value=[block_max_abs(t, block) for t in snapshot.values],
        block=block,
        vmax_k=vk,
        vmax_v=vv,
        layer_vmax_k=[_limit([t]) for t in snapshot.keys],
        layer_vmax_v=[_limit([t]) for t in snapshot.values],
        dominance=top,
        head_dim=snapshot.keys[0].shape[-1],
        kv_heads=snapshot.keys[0].shape[0],
        n_positions=snapshot.n_positions,
    )
