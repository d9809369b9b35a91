"""Strategies added for ``kvscope bench``: TOVA, PyramidKV and Ada-KV (one small class each)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from kvscope.errors import UsageError
from kvscope.prune.evict import Prefill
from kvscope.prune.strategies.base import PROTECT, Strategy, last_probs, top_keep
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
        for i, key in enumerate(snap.keys):
            row = last_probs(pre, i, 1).mean(dim=(0, 1, 2))  # [n]
            row[n - 1] += PROTECT
            rows.append(row.expand(key.shape[0], n))
        return torch.stack(rows)


def pyramid_budgets(layers: int, n: int, k: int, window: int, beta: float) -> list[int]:
    """Tokens kept per kv_head in each layer by PyramidKV, in exact arithmetic; sums to ``layers * k``.

    As in the authors' code, the pyramid shares the budget beyond the observation window ``w =
    min(window, n)``: ``e = k - w`` per layer on average, linear in depth from ``2e - e/beta`` at layer 0
    down to ``e/beta`` at the last layer. When the top would exceed the prompt it is clamped to ``n - w``
    and the bottom raised to ``2e - (n - w)``, so the mean stays ``e``. Each layer then keeps ``w`` plus
    its share, so no layer gets less than the window nor more than ``n``; the fractions are settled by
    largest remainder (ties: lower layer first). When ``k <= w`` the window cannot be kept in every
    layer with the total held: every layer gets ``k`` (as ``snapkv`` there).
    """
    w = min(window, n)
    if layers == 1 or k <= w:
        return [k] * layers
    extra = Fraction(k - w)
    low = extra / Fraction(beta)
    high = 2 * extra - low
    if high > n - w:
        high = Fraction(n - w)
        low = 2 * extra - high
    step = (high - low) / (layers - 1)
    return largest_remainder([w + high - layer * step for layer in range(layers)], layers * k)


def largest_remainder(exact: list[Fraction], total: int) -> list[int]:
    """Integers summing to ``total`` (= ``sum(exact)``): each ``floor(x)``, plus one for the largest
    fractional parts (ties: lower index first)."""
    ints = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - ints[i]), i))
    for i in order[: total - sum(ints)]:
        ints[i] += 1
    return ints


@dataclass
class PyramidKV(SnapKV):
    """PyramidKV (Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
    Funneling", 2024): lower layers keep more tokens, deeper layers fewer, same total. The per-layer
    budgets follow the authors' code (``pyramid_budgets``: a linear schedule of the budget beyond the
    observation window, ``beta`` 20, clamped so that no layer keeps less than the window nor more than
    the prompt); each layer then keeps its top tokens by SnapKV's pooled window attention (same
    ``window``/``kernel``/``sinks`` rules as ``snapkv``). Differences: the authors' code falls back to
    uniform SnapKV budgets when ``n < 2 (k - w)`` (ratios below about 0.5) and kvpress when its smallest
    layer would be under its window; kvscope keeps the clamped pyramid there, and is uniform only
    when ``k <= w``.
    """

    name = "pyramidkv"
    summary = "SnapKV scores, per-layer budgets shrinking with depth, same total (Cai et al., 2024)"
    minimum = {"window": 1, "kernel": 1, "beta": 1}

    beta: float = 20.0

    def layer_budgets(self, layers: int, n_positions: int, ratio: float) -> list[int]:
        """Tokens kept per kv_head in each layer; sums to ``layers * budget(n, ratio)``."""
        k = self.budget(n_positions, ratio)
        return pyramid_budgets(layers, n_positions, k, self.window, self.beta)

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        pooled = self.pooled(pre)
        budgets = self.layer_budgets(pooled.shape[0], pre.n_positions, ratio)
        return torch.stack([top_keep(self.layer_scores(p, b), b) for p, b in zip(pooled, budgets)])


@dataclass
class AdaKV(SnapKV):
    """Ada-KV (Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for
    Efficient LLM Inference", 2024) on SnapKV scores: each layer keeps ``kv_heads * k`` tokens in all,
    shared adaptively between its kv_heads. Every kv_head first keeps the observation window ``w`` and
    its own top ``floor(floor * (k - w))`` other tokens (the safeguard, ``floor`` 0.2, applied to the
    budget left after the window as in the authors' code); the rest of the layer's budget goes to the
    highest remaining scores over all its kv_heads, so heads with concentrated attention keep fewer.
    Below the observation window every kv_head keeps sinks + recent, as ``snapkv``.
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

    def safeguard(self, n: int, k: int) -> int:
        """Tokens every kv_head keeps before the adaptive share: the window plus ``floor`` of the budget
        left after it (``k`` itself below the window, where every kv_head keeps sinks + recent)."""
        w = min(self.window, n)
        return k if k < w else w + int(self.floor * (k - w))

    def _adaptive(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        """Bool ``[kv_head, n]`` with ``kv_heads * k`` True: per-head safeguard, then the layer's best."""
        guaranteed = top_keep(scores, self.safeguard(scores.shape[-1], k))
        rest = scores.masked_fill(guaranteed, float("-inf")).flatten()
        extra = top_keep(rest, scores.shape[0] * k - int(guaranteed.sum())).view_as(scores)
        return guaranteed | extra
