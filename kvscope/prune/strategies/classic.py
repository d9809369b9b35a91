"""The first strategies: KNorm, StreamingLLM, H2O, SnapKV, magnitude and random.

Inputs come from the prefill's ``KVSnapshot``: keys/values ``[layer][kv_head, position, head_dim]``,
attention received ``[layer, kv_head, position]`` and post-RoPE queries ``[layer][q_head, position,
head_dim]``. Each keeps ``budget(n, ratio)`` tokens per (layer, kv_head) unless its docstring says
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kvscope.errors import UsageError
from kvscope.prune.evict import Prefill
from kvscope.prune.strategies.base import Strategy, last_probs, recent_bonus, sinks_and_recent, top_keep
from kvscope.scores import magnitude


@dataclass
class KNorm(Strategy):
    """Keep the lowest key L2 norms per kv_head (Devoto et al., "A Simple and Effective L2 Norm-Based
    Strategy for KV Cache Compression", EMNLP 2024): low key norm predicts high attention.

    ``skip_layers`` (default 0, as kvpress's KnormPress): the first layers are kept whole, as the
    authors' code does with 2 (the norm-attention correlation is weak there); the cache then keeps
    more than ``1 - ratio`` of the prompt.
    """

    name = "knorm"
    summary = "keep the lowest key L2 norms (Devoto et al., EMNLP 2024)"

    skip_layers: int = 0

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        return -torch.stack([key.double().norm(dim=-1) for key in pre.snapshot.keys])

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        keep = super().keep(pre, ratio)
        keep[: self.skip_layers] = True
        return keep

    def warnings(self, n_positions: int, ratio: float, layers: int | None = None) -> list[str]:
        out = super().warnings(n_positions, ratio, layers)
        if self.skip_layers:
            out.append(
                f"{self.label}: layers 0..{self.skip_layers - 1} are kept whole, so more than "
                f"{1 - ratio:.0%} of the cache is kept"
            )
        return out


@dataclass
class Streaming(Strategy):
    """StreamingLLM (Xiao et al., "Efficient Streaming Language Models with Attention Sinks", ICLR 2024):
    the first ``sinks`` tokens (attention sinks, default 4) plus the most recent ``k - sinks``."""

    name = "streaming"
    summary = "4 sink tokens + the most recent window (Xiao et al., ICLR 2024)"

    sinks: int = 4

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        row = sinks_and_recent(pre.n_positions, k, self.sinks)
        return row.expand(len(pre.snapshot.keys), pre.snapshot.keys[0].shape[0], pre.n_positions).clone()

    def warnings(self, n_positions: int, ratio: float, layers: int | None = None) -> list[str]:
        k = self.budget(n_positions, ratio)
        out = super().warnings(n_positions, ratio, layers)
        if 0 < k <= self.sinks:
            out.append(f"{self.label}: budget {k} tokens <= {self.sinks} sinks: no recent window is kept")
        return out


@dataclass
class H2O(Strategy):
    """Heavy-Hitter Oracle (Zhang et al., NeurIPS 2023): half the budget for the most recent tokens, the
    other half for the highest accumulated attention received (summed over every prompt query of every
    q_head in the kv_head's group)."""

    name = "h2o"
    summary = "highest accumulated attention + recent window, half each (Zhang et al., NeurIPS 2023)"

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        received = pre.snapshot.attention_received
        if received is None:
            raise UsageError("h2o needs the attention received during prefill")
        return received.double() + recent_bonus(pre.n_positions, k // 2)


@dataclass
class SnapKV(Strategy):
    """SnapKV (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", 2024): attention
    from the last ``window`` prompt queries (default 32; 64 in some reproductions), summed over them and
    the group's q_heads, average-pooled over positions (``kernel`` 5); the observation window itself is
    always kept.

    When the budget ``k`` is smaller than the window (``min(window, n)``), the window cannot be kept
    whole; the originals never configure that case. kvscope then keeps the first ``sinks`` tokens
    (attention sinks) plus the most recent ``k - sinks``, i.e. StreamingLLM, and ``warnings`` says so
    (a plain recent window would drop the sinks).

    Pooling runs over all ``n`` positions, the window's own votes included, averaging only real
    positions at the edges (``count_include_pad=False``). The authors' code pools the positions before
    the window alone, zero padding counted, so the first ``kernel // 2`` tokens and the last ``kernel //
    2`` before the window score slightly differently there.
    """

    name = "snapkv"
    summary = "attention from the last 32 prompt queries, pooled (Li et al., 2024)"
    minimum = {"window": 1, "kernel": 1}

    window: int = 32
    kernel: int = 5
    sinks: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel % 2 == 0:
            raise UsageError(f"{self.name}: kernel must be odd (centred pooling), got {self.kernel}")

    def pooled(self, pre: Prefill) -> torch.Tensor:
        """``[layer, kv_head, n]`` float64: the window's attention votes, average-pooled over positions."""
        snap, n = pre.snapshot, pre.n_positions
        if snap.queries is None:
            raise UsageError(f"{self.name} needs the prompt's queries")
        w = min(self.window, n)
        votes = torch.stack([last_probs(pre, layer, w).sum(dim=(1, 2)) for layer in range(len(snap.keys))])
        return F.avg_pool1d(votes, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False)

    def layer_scores(self, pooled: torch.Tensor, k: int) -> torch.Tensor:
        """``[kv_head, n]`` scores for one layer at budget ``k``: pooled votes with the window protected,
        or sinks + recent when ``k`` is below the window."""
        n = pooled.shape[-1]
        if k < min(self.window, n):
            return sinks_and_recent(n, k, self.sinks).expand_as(pooled)
        return pooled + recent_bonus(n, min(self.window, n))

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        k = self.budget(pre.n_positions, ratio)
        return torch.stack([top_keep(self.layer_scores(p, k), k) for p in self.pooled(pre)])

    def warnings(self, n_positions: int, ratio: float, layers: int | None = None) -> list[str]:
        out = super().warnings(n_positions, ratio, layers)
        k, w = self.budget(n_positions, ratio), min(self.window, n_positions)
        if 0 < k < w:
            out.append(
                f"{self.label}: budget {k} tokens < observation window {w}: keeps {min(self.sinks, k)} "
                f"sink tokens + the most recent {k - min(self.sinks, k)} (StreamingLLM) instead"
            )
        return out


@dataclass
class Magnitude(Strategy):
    """Keep the highest magnitude ``(||k||2 + ||v||2) / 2`` (``kvscope.scores.magnitude``, the one
    definition kvscope uses everywhere): the seed project's idea that large entries matter, with L2
    norms. The seed's own mean |K| + mean |V| is the ``mean_abs`` leave-one-out proxy."""

    name = "magnitude"
    summary = "keep the highest (||k|| + ||v||) / 2 (the seed's idea, kvscope.scores.magnitude)"

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        snap = pre.snapshot
        return torch.stack([magnitude(kk, vv) for kk, vv in zip(snap.keys, snap.values)])


@dataclass
class Random(Strategy):
    """Uniformly random tokens per (layer, kv_head), from a generator seeded with ``seed`` (a floor for
    the others)."""

    name = "random"
    summary = "uniformly random tokens (seeded)"

    seed: int = 0

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        snap = pre.snapshot
        g = torch.Generator().manual_seed(self.seed)
        return torch.rand(len(snap.keys), snap.keys[0].shape[0], pre.n_positions, generator=g, dtype=torch.float64)
