"""Strategies added for ``kvscope bench``: TOVA, PyramidKV and Ada-KV (one small class each)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvscope.attention import last_query_probs
from kvscope.errors import UsageError
from kvscope.prune.evict import Prefill
from kvscope.prune.strategies.base import PROTECT, Strategy, split_budget, top_keep
from kvscope.prune.strategies.classic import SnapKV


@dataclass
class TOVA(Strategy):
    """TOVA (Oren et al., "Transformers are Multi-State RNNs", 2024): keep the tokens the last query
    attends to most. The score of a position is the softmax attention of the last prompt position,
    averaged over all q_heads of the layer (the paper's layer-wise policy), so every kv_head of a layer
    keeps the same tokens. The last prompt token itself is always kept. Applied once after the prefill
    (query-agnostic compression), not token by token as in the paper's decoding loop.
    """

    name = "tova"
    summary = "attention of the last prompt query, averaged over the layer's q_heads (Oren et al., 2024)"

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        snap, n = pre.snapshot, pre.n_positions
        if snap.queries is None:
            raise UsageError("tova needs the prompt's queries")
        rows = []
        for i, (q, key) in enumerate(zip(snap.queries, snap.keys)):
            row = last_query_probs(q, key, pre.scaling[i], 1).mean(dim=(0, 1, 2))  # [n]
            row[n - 1] += PROTECT
            rows.append(row.expand(key.shape[0], n))
        return torch.stack(rows)


def pyramid_weights(layers: int, k: float, beta: float) -> list[float]:
    """Per-layer budgets of PyramidKV before rounding: an arithmetic sequence from ``2k - k/beta`` at
    layer 0 down to ``k/beta`` at the last layer (mean ``k``)."""
    if layers == 1:
        return [float(k)]
    low, high = k / beta, 2 * k - k / beta
    return [high - layer * (high - low) / (layers - 1) for layer in range(layers)]


@dataclass
class PyramidKV(SnapKV):
    """PyramidKV (Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
    Funneling", 2024): lower layers keep more tokens, deeper layers fewer, same total. Layer ``l`` gets
    ``pyramid_weights`` (from ``2k - k/beta`` down to ``k/beta``, ``beta`` 20 as in the authors' code),
    rounded so that the budgets sum to exactly ``layers * k`` and none exceeds the prompt; each layer
    then keeps its top tokens by SnapKV's pooled window attention (same ``window``/``kernel``/``sinks``
    rules as ``snapkv``). Unlike the authors' code the pyramid spans the whole budget, window included.
    """

    name = "pyramidkv"
    summary = "SnapKV scores, per-layer budgets shrinking with depth, same total (Cai et al., 2024)"
    minimum = {"window": 1, "kernel": 1, "beta": 1}

    beta: float = 20.0

    def layer_budgets(self, layers: int, n_positions: int, ratio: float) -> list[int]:
        """Tokens kept per kv_head in each layer; sums to ``layers * budget(n, ratio)``."""
        k = self.budget(n_positions, ratio)
        return split_budget(pyramid_weights(layers, k, self.beta), layers * k, n_positions)

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        pooled = self.pooled(pre)
        budgets = self.layer_budgets(pooled.shape[0], pre.n_positions, ratio)
        return torch.stack([top_keep(self.layer_scores(p, b), b) for p, b in zip(pooled, budgets)])

    def warnings(self, n_positions: int, ratio: float, layers: int | None = None) -> list[str]:
        out = Strategy.warnings(self, n_positions, ratio, layers)
        w = min(self.window, n_positions)
        budgets = self.layer_budgets(layers, n_positions, ratio) if layers else None
        smallest = min(budgets) if budgets else int(self.budget(n_positions, ratio) / self.beta)
        if smallest < w:
            where = f"{sum(b < w for b in budgets)} of {layers} layers" if budgets else "the deepest layers"
            out.append(
                f"{self.label}: {where} keep fewer tokens than the observation window {w} (down to "
                f"{smallest}); there it keeps sink tokens + the most recent (StreamingLLM)"
            )
        return out


@dataclass
class AdaKV(SnapKV):
    """Ada-KV (Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for
    Efficient LLM Inference", 2024) on SnapKV scores: each layer keeps ``kv_heads * k`` tokens in all,
    shared adaptively between its kv_heads. Every kv_head first gets its own top ``floor(floor * k)``
    (the safeguard, ``floor`` 0.2 as in the authors' code); the rest of the layer's budget goes to the
    highest remaining scores over all its kv_heads, so heads with concentrated attention keep fewer.
    Below the observation window it falls back to sinks + recent for every kv_head, as ``snapkv``.
    """

    name = "adakv"
    summary = "SnapKV scores, adaptive per-kv_head budgets, same total per layer (Feng et al., 2024)"

    floor: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.floor <= 1.0:
            raise UsageError(f"{self.name}: floor must be in [0, 1], got {self.floor}")

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        k = self.budget(pre.n_positions, ratio)
        return torch.stack([self._adaptive(self.layer_scores(p, k), k) for p in self.pooled(pre)])

    def _adaptive(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        """Bool ``[kv_head, n]`` with ``kv_heads * k`` True: per-head safeguard, then the layer's best."""
        guaranteed = top_keep(scores, int(self.floor * k))
        rest = scores.masked_fill(guaranteed, float("-inf")).flatten()
        extra = top_keep(rest, scores.shape[0] * k - int(guaranteed.sum())).view_as(scores)
        return guaranteed | extra
