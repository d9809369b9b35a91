"""Query-to-cache cosine similarity (heatmaps) and kNN filtering of the shared cache between agents.

Following the kNN-LatentMAS extension of LatentMAS (Zou et al., arXiv 2511.20639): the incoming agent's
query is the mean input embedding of its whole templated prompt ``[hidden]``, folded to ``head_dim`` by
averaging its ``hidden / head_dim`` contiguous chunks (for ``hidden == kv_heads * head_dim`` this is the
mean over kv_heads). Keys are the cached, post-RoPE keys averaged over kv_heads ``[slot, head_dim]``. The
similarity is their cosine, per layer.

kNN filtering keeps ``k = min(S, max(floor(S * p), min_keep))`` of a row's ``S`` real slots: the
``min(min_keep, S)`` most recent always, plus ``k - r`` chosen among the older ones by similarity at the
middle layer (``top``, ``bottom``) or at random; kept slots stay in temporal order and keep their true
positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.errors import UsageError
from kvscope.hfcache import cache_layer_kv
from kvscope.mas.engine import CacheState, select_slots


def prompt_query(model: Any, ids: list[int]) -> torch.Tensor:
    """Mean input embedding of ``ids``: ``[hidden]`` float32."""
    emb = model.get_input_embeddings()
    device = emb.weight.device
    with torch.inference_mode():
        return emb(torch.tensor(ids, device=device)).float().mean(dim=0).cpu()


def fold_query(query: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``[hidden]`` -> ``[head_dim]``: the mean of the ``hidden / head_dim`` contiguous chunks."""
    if query.shape[-1] % head_dim:
        raise UsageError(f"hidden size {query.shape[-1]} is not a multiple of head_dim {head_dim}")
    return query.reshape(-1, head_dim).mean(dim=0)


def layer_similarity(state: CacheState, row: int, layer: int, query: torch.Tensor) -> torch.Tensor:
    """Cosine of ``query`` ``[head_dim]`` with the kv_head-mean key of each real slot of ``row``: ``[S]``."""
    keys, _ = cache_layer_kv(state.cache, layer)
    slots = state.real_slots(row).to(keys.device)
    k = keys[row][:, slots].float().mean(dim=0).cpu()  # [S, head_dim]
    return torch.nn.functional.cosine_similarity(k, query[None, :].expand_as(k), dim=-1, eps=1e-12)


def all_layer_similarity(state: CacheState, row: int, query: torch.Tensor, n_layers: int) -> torch.Tensor:
    """``[layer, S]``: ``layer_similarity`` for every layer."""
    return torch.stack([layer_similarity(state, row, layer, query) for layer in range(n_layers)])


def keep_count(n_slots: int, keep_fraction: float, min_keep: int) -> int:
    """``min(S, max(floor(S * p), min_keep))`` (a 1e-9 guard keeps ``floor(100 * 0.29)`` at 29)."""
    return min(n_slots, max(math.floor(n_slots * keep_fraction + 1e-9), min_keep))


def _top(scores: torch.Tensor, k: int, _g: torch.Generator) -> torch.Tensor:
    return torch.topk(scores, k, largest=True).indices


def _bottom(scores: torch.Tensor, k: int, _g: torch.Generator) -> torch.Tensor:
    return torch.topk(scores, k, largest=False).indices


def _random(scores: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    return torch.randperm(scores.shape[0], generator=g)[:k]


KNN_STRATEGIES: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "top": _top,
    "bottom": _bottom,
    "random": _random,
}


def select_indices(
    scores: torch.Tensor, keep_fraction: float, min_keep: int, strategy: str, generator: torch.Generator
) -> torch.Tensor:
    """Indices (into ``scores`` ``[S]``, ascending) of the slots to keep."""
    n = scores.shape[0]
    k = keep_count(n, keep_fraction, min_keep)
    if k >= n:
        return torch.arange(n)
    recent = min(min_keep, n)
    older = (
        KNN_STRATEGIES[strategy](scores[: n - recent], k - recent, generator)
        if k > recent
        else torch.empty(0, dtype=torch.int64)
    )
    return torch.cat([torch.sort(older).values, torch.arange(n - recent, n)])


@dataclass(frozen=True)
class KnnConfig:
    keep_fraction: float = 0.8
    min_keep: int = 5
    strategy: str = "top"

    def __post_init__(self) -> None:
        if not 0 < self.keep_fraction <= 1:
            raise UsageError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}", param="keep_fraction")
        if self.min_keep < 0:
            raise UsageError(f"min_keep must be >= 0, got {self.min_keep}", param="min_keep")
        if self.strategy not in KNN_STRATEGIES:
            raise UsageError(
                f"unknown strategy {self.strategy!r}: use one of {', '.join(KNN_STRATEGIES)}", param="strategy"
            )


def knn_filter(
    model: Any,
    state: CacheState,
    queries: list[torch.Tensor],
    config: KnnConfig,
    n_layers: int,
    generators: list[torch.Generator],
) -> tuple[CacheState, dict[str, Any]]:
    """Filter every row of ``state`` by its folded query ``[head_dim]`` at the middle layer.

    Returns the new state and an event: slots and KV bytes per row before and after.
    """
    middle = n_layers // 2
    keep = []
    for row, query in enumerate(queries):
        scores = layer_similarity(state, row, middle, query)
        keep.append(
            state.real_slots(row)[
                select_indices(scores, config.keep_fraction, config.min_keep, config.strategy, generators[row])
            ]
        )
    new = select_slots(model, state, keep, n_layers)
    event = {
        "layer": middle,
        "slots_before": [int(state.real_slots(r).numel()) for r in range(state.batch)],
        "slots_after": [int(k.numel()) for k in keep],
        "kv_bytes_before": [state.row_nbytes(r, n_layers) for r in range(state.batch)],
        "kv_bytes_after": [new.row_nbytes(r, n_layers) for r in range(new.batch)],
    }
    return new, event


def reuse_positions(state: CacheState) -> CacheState:
    """The kNN fork's positions (``--knn_positions reuse``): after filtering, the next token of each row
    takes the row's cache length (its kept slot count) as its position, as Hugging Face derives it from
    the cache, instead of the row's true length. Kept slots keep the rotary phase they were written with.
    """
    state.lengths = (state.positions >= 0).sum(dim=1)
    return state
