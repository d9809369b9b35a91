"""Per-token scores shared by analyze and prune: one definition of each, named everywhere the same.

- ``magnitude``: (||k||₂ + ||v||₂) / 2 per (layer, kv_head, position), the L2 norms of the post-RoPE
  key and value vectors. This is the "magnitude" of every kvscope figure, metric and strategy.
- ``mean_abs``: mean |k| + mean |v| over head_dim, the seeds' original heuristic, kept as a named
  alternative (labelled ``mean_abs`` wherever it appears, never "magnitude").
"""

from __future__ import annotations

import torch


def magnitude(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[..., position]`` float64: (||k||₂ + ||v||₂) / 2 of ``keys``/``values`` ``[..., position, head_dim]``."""
    return (keys.double().norm(dim=-1) + values.double().norm(dim=-1)) / 2


def mean_abs(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[..., position]`` float64: mean |k| + mean |v| over head_dim (the seeds' heuristic)."""
    return keys.double().abs().mean(-1) + values.double().abs().mean(-1)
