"""Decode-time scores: which kept slots a ``budget`` evicts first while a model writes.

Each scorer returns float64 ``[batch, kv_head, slots]`` (higher = keep) from what the session holds;
slots that are not candidates (already evicted, padding, the tokens of the current step) are ignored by
the caller. The conventions match the prefill strategies of the same name
(``kvscope.prune.strategies``), step by step:

- ``streaming``: the first ``sinks`` real positions, then the most recent (Xiao et al., ICLR 2024).
- ``h2o``: attention received, accumulated over every query so far (prompt and decoded, each q_head of
  the kv_head's group), with the most recent ``budget // 2`` slots protected (Zhang et al., NeurIPS 2023).
- ``tova``: the attention the previous token's query gave each slot, averaged over the layer's q_heads
  (Oren et al., 2024). The previous step's query, since eviction happens before this step's attention.
- ``knorm``: the lowest key L2 norm (Devoto et al., EMNLP 2024).
- ``random``: uniform, from a generator per layer seeded with the strategy's ``seed`` and the layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from kvscope.prune.strategies.base import PROTECT

Scorer = Callable[[Any, int, torch.Tensor], torch.Tensor]


def _streaming(session: Any, layer: int, key: torch.Tensor) -> torch.Tensor:
    b, kv, slots = key.shape[0], key.shape[1], key.shape[2]
    position = torch.arange(slots, dtype=torch.float64)[None] - torch.tensor(session.pads, dtype=torch.float64)[:, None]
    score = position + 2 * PROTECT * (position < session.strategy.sinks)
    return score[:, None, :].expand(b, kv, slots)


def _h2o(session: Any, layer: int, key: torch.Tensor) -> torch.Tensor:
    score = session.received[layer].double().clone()
    recent = session.budget // 2
    if recent:
        score[..., -recent:] += PROTECT
    return score


def _tova(session: Any, layer: int, key: torch.Tensor) -> torch.Tensor:
    last = session.last_probs[layer].double()
    last = torch.cat([last, last.new_zeros(last.shape[0], key.shape[2] - last.shape[-1])], -1)  # this step's slots
    return last[:, None, :].expand(key.shape[0], key.shape[1], -1)


def _knorm(session: Any, layer: int, key: torch.Tensor) -> torch.Tensor:
    return -key.double().norm(dim=-1).cpu()


def _random(session: Any, layer: int, key: torch.Tensor) -> torch.Tensor:
    return torch.rand(key.shape[:3], generator=session.rng(layer), dtype=torch.float64)


SCORERS: dict[str, Scorer] = {
    "streaming": _streaming,
    "h2o": _h2o,
    "tova": _tova,
    "knorm": _knorm,
    "random": _random,
}
NEEDS_PROBS = {"h2o", "tova"}  # scorers that read the attention of each decoded query


def evict(keep: torch.Tensor, scores: torch.Tensor, new: int, budget: int, every: int) -> torch.Tensor:
    """Bool ``[batch, kv_head, slots]``: the slots to evict now (a subset of the kept old ones).

    A row/kv_head holding more than ``budget`` kept slots drops its lowest-scoring old slots (the last
    ``new`` slots, this step's tokens, are never dropped) down to ``budget - every + 1`` (so the next
    ``every - 1`` steps fit without evicting), or to ``new`` if that is larger. Ties: lower slot first.
    """
    slots = keep.shape[-1]
    count = keep.sum(-1)
    target = max(budget - every + 1, new)
    drop = torch.where(count > budget, count - target, torch.zeros_like(count))
    candidates = keep.clone()
    candidates[..., slots - new :] = False
    ranked = scores.to(keep.device).masked_fill(~candidates, float("inf"))
    if int(drop.max()) == 1:  # one slot each (every=1): the first lowest, as the stable sort would rank it
        return (drop > 0)[..., None] & F.one_hot(ranked.argmin(-1), slots).bool()
    order = torch.sort(ranked, dim=-1, stable=True).indices
    chosen = torch.arange(slots, device=keep.device) < drop[..., None]
    return torch.zeros_like(keep).scatter_(-1, order, chosen)
