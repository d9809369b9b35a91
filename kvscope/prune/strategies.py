"""Token eviction strategies: one small class each, looked up by name in ``STRATEGIES``.

Each strategy ranks the prompt's tokens per (layer, kv_head) and keeps exactly
``ceil((1 - ratio) * n)`` of them (``kvscope.prune.evict.n_keep``). Scores are float64 computed
from the float32 snapshot (in bf16 most key norms tie, kvpress issue #276). Inputs come from the
prefill's ``KVSnapshot``: keys/values ``[layer][kv_head, position, head_dim]``, attention received
``[layer, kv_head, position]`` and post-RoPE queries ``[layer][q_head, position, head_dim]``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from kvscope.errors import UsageError
from kvscope.prune.evict import Prefill, n_keep

PROTECT = 1e12  # added to the score of tokens a strategy always keeps (sinks, recent window)


def top_keep(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool ``[..., n]``: True for the ``k`` highest scores of each row."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        keep.scatter_(-1, torch.topk(scores, k, dim=-1).indices, True)
    return keep


class Strategy:
    """Base: ``scores(pre, k)`` ``[layer, kv_head, n]`` (higher = keep); ``keep`` takes the top ``k``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        raise NotImplementedError

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        """Keep plan ``[layer, kv_head, n]`` removing a fraction ``ratio`` of the prompt tokens."""
        k = n_keep(pre.n_positions, ratio)
        return top_keep(self.scores(pre, k), k)


def _recent(n: int, window: int) -> torch.Tensor:
    """``[n]`` float64: PROTECT + position for the last ``window`` positions, 0 elsewhere."""
    bonus = torch.zeros(n, dtype=torch.float64)
    if window > 0:
        bonus[n - window:] = PROTECT + torch.arange(n - window, n, dtype=torch.float64)
    return bonus


class KNorm(Strategy):
    """Keep the lowest key L2 norms per kv_head (Devoto et al., "A Simple and Effective L2 Norm-Based
    Strategy for KV Cache Compression", EMNLP 2024): low key norm predicts high attention."""

    name = "knorm"
    summary = "keep the lowest key L2 norms (Devoto et al., EMNLP 2024)"

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        return -torch.stack([key.double().norm(dim=-1) for key in pre.snapshot.keys])


class Streaming(Strategy):
    """StreamingLLM (Xiao et al., ICLR 2024): the first 4 tokens (attention sinks) plus the most recent
    ``k - 4`` tokens."""

    name = "streaming"
    summary = "4 sink tokens + the most recent window (Xiao et al., ICLR 2024)"
    sinks = 4

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        n, s = pre.n_positions, min(self.sinks, k)
        row = _recent(n, k - s)
        row[:s] = 2 * PROTECT + n - torch.arange(s, dtype=torch.float64)
        return row.expand(len(pre.snapshot.keys), pre.snapshot.keys[0].shape[0], n).clone()


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
        return received.double() + _recent(pre.n_positions, k // 2)


class SnapKV(Strategy):
    """SnapKV (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", 2024): attention
    from the last ``window`` prompt queries, summed over them and the group's q_heads, average-pooled
    over positions (kernel 5); the observation window itself is always kept."""

    name = "snapkv"
    summary = "attention from the last 32 prompt queries, pooled (Li et al., 2024)"
    window = 32
    kernel = 5

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        snap, n = pre.snapshot, pre.n_positions
        if snap.queries is None:
            raise UsageError("snapkv needs the prompt's queries")
        w = min(self.window, n)
        rows = [self._votes(q, key, pre.scaling[i], w) for i, (q, key) in enumerate(zip(snap.queries, snap.keys))]
        votes = torch.stack(rows)  # [layer, kv_head, n]
        pooled = F.avg_pool1d(votes, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False)
        return pooled + _recent(n, min(w, k))

    @staticmethod
    def _votes(q: torch.Tensor, key: torch.Tensor, scale: float, w: int) -> torch.Tensor:
        """``[kv_head, n]``: softmax attention of the last ``w`` queries, summed per kv_head group."""
        hq, n, _ = q.shape
        hkv = key.shape[0]
        scores = torch.einsum("hqd,hkd->hqk", q[:, n - w:].double(), key.double().repeat_interleave(hq // hkv, 0))
        visible = torch.arange(n)[None, :] <= torch.arange(n - w, n)[:, None]
        probs = torch.softmax(scores * scale + torch.where(visible, 0.0, float("-inf")), dim=-1)
        return probs.view(hkv, hq // hkv, w, n).sum(dim=(1, 2))


class Magnitude(Strategy):
    """The seed project's heuristic: drop the tokens with the lowest mean |K| + mean |V|."""

    name = "magnitude"
    summary = "drop the lowest mean |K| + |V| (the seed's heuristic)"

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        snap = pre.snapshot
        return torch.stack([kk.double().abs().mean(-1) + vv.double().abs().mean(-1)
                            for kk, vv in zip(snap.keys, snap.values)])


class Random(Strategy):
    """Uniformly random tokens per (layer, kv_head), from a seeded generator (a floor for the others)."""

    name = "random"
    summary = "uniformly random tokens (seeded)"
    seed = 0

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        snap = pre.snapshot
        g = torch.Generator().manual_seed(self.seed)
        return torch.rand(len(snap.keys), snap.keys[0].shape[0], pre.n_positions, generator=g, dtype=torch.float64)


STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (KNorm, Streaming, H2O, SnapKV, Magnitude, Random)}


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; a one-line ``UsageError`` listing the valid ones otherwise."""
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()
