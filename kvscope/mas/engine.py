"""Bookkeeping of one batched KV cache shared by agents: slots, true positions, masks, labels.

Positions and masks are ours, never derived from the cache length:

- ``CacheState.positions`` ``[batch, slot]`` holds each cache slot's true token position, ``-1`` for a
  padding slot; the 2-D attention mask is ``positions >= 0``.
- ``CacheState.lengths`` ``[batch]`` is each row's true length, so new tokens continue from it even after
  slots were dropped (kNN filtering keeps fewer slots than positions).
- New segments are left-padded, so every row's last real token sits in the last column; it is still read
  by index from the row's own mask.

Decoding goes through the package's one loop, :func:`kvscope.decode.generate`, with a step that keeps
this bookkeeping; every forward passes the cache through :func:`kvscope.compat.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope import compat
from kvscope.decode import Sampler, generate
from kvscope.hfcache import cache_from_tensors, cache_layer_kv


@dataclass
class CacheState:
    """The shared cache of ``batch`` rows and what each of its slots is."""

    cache: Any
    positions: torch.Tensor  # [batch, slot] int64, -1 = padding
    lengths: torch.Tensor  # [batch] int64, true length = next position
    labels: list[list[str]] = field(default_factory=list)  # per row, per slot: "agent:kind", "" = padding

    @classmethod
    def empty(cls, model: Any, batch: int) -> CacheState:
        from transformers import DynamicCache

        return cls(
            DynamicCache(config=model.config),
            torch.empty(batch, 0, dtype=torch.int64),
            torch.zeros(batch, dtype=torch.int64),
            [[] for _ in range(batch)],
        )

    @property
    def batch(self) -> int:
        return self.positions.shape[0]

    @property
    def slots(self) -> int:
        return self.positions.shape[1]

    @property
    def mask(self) -> torch.Tensor:
        return (self.positions >= 0).long()

    def real_slots(self, row: int) -> torch.Tensor:
        """Slot indices of row ``row`` that hold a real token, ascending."""
        return torch.nonzero(self.positions[row] >= 0).flatten()

    def row_nbytes(self, row: int, n_layers: int) -> int:
        """Bytes of K and V of row ``row``'s real slots."""
        if not self.slots:
            return 0
        k, _ = cache_layer_kv(self.cache, 0)
        per_slot = 2 * k.shape[1] * k.shape[3] * k.element_size() * n_layers
        return per_slot * int((self.positions[row] >= 0).sum())


@dataclass
class StepOutput:
    hidden: torch.Tensor | None  # [batch, hidden] last layer, after the final norm, at each row's last real token
    logits: torch.Tensor | None  # [batch, vocab] at the same token


def forward(
    model: Any,
    state: CacheState,
    new_real: torch.Tensor,
    label: str,
    *,
    input_ids=None,
    embeds=None,
    want: str = "logits",
) -> StepOutput:
    """Append ``L`` slots per row (``input_ids`` ``[B, L]`` or ``embeds`` ``[B, L, hidden]``).

    ``new_real`` ``[B, L]`` bool marks real tokens; real ones take positions ``lengths + 0, 1, ...``.
    ``want="hidden"`` runs the decoder without the vocabulary head (latent steps read no logits) and
    returns only the last hidden state; ``"logits"`` returns only the last logits.
    """
    device = next(model.parameters()).device
    offsets = torch.cumsum(new_real.long(), dim=1) - 1
    new_pos = torch.where(new_real, state.lengths[:, None] + offsets, torch.full_like(offsets, -1))
    mask = torch.cat([state.mask, new_real.long()], dim=1)
    inputs = {"input_ids": input_ids.to(device)} if input_ids is not None else {"inputs_embeds": embeds}
    kw = dict(attention_mask=mask.to(device), position_ids=new_pos.clamp(min=0).to(device), use_cache=True)
    with torch.inference_mode():
        if want == "hidden":
            out = compat.forward(model.get_decoder(), state.cache, **inputs, **kw)
        else:
            out = compat.forward(model, state.cache, **inputs, **kw, logits_to_keep=1)
    state.positions = torch.cat([state.positions, new_pos], dim=1)
    state.lengths = state.lengths + new_real.long().sum(dim=1)
    for row in range(state.batch):
        state.labels[row].extend(label if r else "" for r in new_real[row].tolist())
    if want == "hidden":
        last = last_real_index(new_real)  # left padding: the last column for every row with a real token
        return StepOutput(out.last_hidden_state[torch.arange(state.batch), last.to(device)], None)
    return StepOutput(None, out.logits[:, -1].float())


def last_real_index(real: torch.Tensor) -> torch.Tensor:
    """Column of each row's last True in ``real`` ``[B, L]`` (0 for a row with none)."""
    cols = torch.arange(real.shape[1]).expand_as(real)
    return torch.where(real, cols, torch.zeros_like(cols)).max(dim=1).values


def append_ids(
    model: Any, state: CacheState, rows: list[list[int]], label: str, pad_id: int, want: str = "logits"
) -> StepOutput:
    """Append one token list per row, left-padded to the longest."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.int64)
    real = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.int64)
            real[i, width - len(r) :] = True
    return forward(model, state, real, label, input_ids=ids, want=want)


@dataclass
class Sampling:
    """Decoding settings; ``generators`` holds one seeded generator per batch row."""

    max_new_tokens: int
    sampler: Sampler
    generators: list[torch.Generator]
    stop_ids: frozenset[int]
    pad_id: int


def decode(model: Any, state: CacheState, first: StepOutput, sampling: Sampling, label: str) -> list[list[int]]:
    """Sample up to ``max_new_tokens`` per row, continuing ``state`` through :func:`kvscope.decode.generate`.

    Returns each row's generated ids (the stop token included, as a generated token).
    """

    def step(tokens: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        return forward(model, state, live, label, input_ids=tokens).logits

    return generate(
        model,
        first_logits=first.logits,
        max_new_tokens=sampling.max_new_tokens,
        sampler=sampling.sampler,
        stop_ids=sampling.stop_ids,
        generators=sampling.generators,
        pad_id=sampling.pad_id,
        step=step,
    ).tokens


def select_slots(model: Any, state: CacheState, keep: list[torch.Tensor], n_layers: int) -> CacheState:
    """A new state holding, per row, the slots ``keep[row]`` (ascending indices), left-padded to the longest.

    The same indices apply to every layer, K and V; positions and labels move with their slots, and
    ``lengths`` (the next true position) is unchanged.
    """
    width = max(len(k) for k in keep)
    batch = state.batch
    gather = torch.zeros(batch, width, dtype=torch.int64)
    real = torch.zeros(batch, width, dtype=torch.bool)
    for row, idx in enumerate(keep):
        gather[row, width - len(idx) :] = idx
        real[row, width - len(idx) :] = True
    keys, values = [], []
    for layer in range(n_layers):
        k, v = cache_layer_kv(state.cache, layer)
        g = gather.to(k.device)[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
        zero = (~real).to(k.device)[:, None, :, None]
        keys.append(torch.gather(k, 2, g).masked_fill(zero, 0.0))
        values.append(torch.gather(v, 2, g).masked_fill(zero, 0.0))
    positions = torch.where(real, torch.gather(state.positions, 1, gather), torch.full_like(gather, -1))
    labels = [
        [state.labels[r][i] if ok else "" for i, ok in zip(gather[r].tolist(), real[r].tolist())] for r in range(batch)
    ]
    return CacheState(cache_from_tensors(model.config, keys, values), positions, state.lengths.clone(), labels)


def concat_states(model: Any, states: list[CacheState], n_layers: int) -> CacheState:
    """Join caches of the same rows in time: slots of ``states[0]``, then ``states[1]``, ...

    Every slot keeps its K, V and true position (RoPE is already applied, so nothing is re-rotated);
    ``lengths`` is the largest next position over the parts, so tokens appended later follow them all.
    """
    keys, values = [], []
    for layer in range(n_layers):
        kv = [cache_layer_kv(s.cache, layer) for s in states]
        keys.append(torch.cat([k for k, _ in kv], dim=2))
        values.append(torch.cat([v for _, v in kv], dim=2))
    labels = [sum((s.labels[row] for s in states), []) for row in range(states[0].batch)]
    return CacheState(
        cache_from_tensors(model.config, keys, values),
        torch.cat([s.positions for s in states], dim=1),
        torch.stack([s.lengths for s in states]).max(dim=0).values,
        labels,
    )
