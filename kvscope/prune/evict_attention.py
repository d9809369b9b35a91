"""The attention function every prune run goes through: causal GQA attention that can evict keys.

Registered with transformers' ``AttentionInterface`` under ``"kvscope_prune"`` (on first use). It
ignores the mask transformers builds (whose length follows cache layer 0, wrong once layers hold
different numbers of slots) and builds its own from the shapes: the ``q`` new tokens are the last
``q`` keys, so query ``i`` sees keys ``0 .. k - q + i`` ("bottom-right" causal alignment). All
cached slots precede the new tokens.

Masked eviction: while ``evicting(model, masks)`` is active, ``masks[layer]`` is a bool tensor
``[kv_head, slots]`` (True = keep) over the first ``slots`` keys of that layer; a False entry is
set to ``-inf`` before the softmax, so it receives exactly zero probability from every q_head in
the kv_head's GQA group. Keys after ``slots`` (the tokens being scored) are never masked.
Physical removal (a shorter cache) and masking therefore give the same logits up to float
rounding, which the tests check.

Any architecture whose attention goes through the interface works: fused QKV and multi-query
attention look the same from here (see ``kvscope.archs``). Gemma 2's logit soft-capping
(``softcap``) is applied as the model does, ``tanh(s / c) * c`` before the mask. A sliding-window
layer (``sliding_window`` = ``W``) lets a query at position ``p`` see keys at positions ``p - W < j <= p``;
since eviction makes slots differ from positions, ``positions[layer]`` (``[kv_head, slots]``, the
token position of each cached slot) and ``start`` (the position of the first token after the
cache) give each key its position.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from kvscope.attention import causal_visible, softcapped_attention
from kvscope.attention_interface import interface_args, interface_output, register_attention, routed

NAME = "kvscope_prune"
_STATE: contextvars.ContextVar[EvictState | None] = contextvars.ContextVar("kvscope_prune_state", default=None)


@dataclass
class EvictState:
    """Per-layer keep masks ``{layer: bool [kv_head, slots]}``, slot positions ``{layer: int64 [kv_head,
    slots]}`` (windowed layers) and ``start``, the position of the first key after the cached slots."""

    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    positions: dict[int, torch.Tensor] = field(default_factory=dict)
    start: int = 0


causal_keep = causal_visible  # bool [q, k]: query i (the (k - q + i)-th key) sees keys 0 .. k - q + i


def build_mask(q: int, k: int, group: int, keep: torch.Tensor | None, device: Any = None) -> torch.Tensor | None:
    """Bool mask for SDPA, ``[1, q_head or 1, q, k]``, or ``None`` when every key is visible.

    ``keep`` is ``[kv_head, slots]`` over the first ``slots`` keys; each kv_head's row is repeated for
    the ``group`` q_heads that read it.
    """
    if keep is None and q == 1:
        return None
    mask = causal_keep(q, k, device)[None, None]
    if keep is not None:
        slots = keep.shape[-1]
        full = torch.ones(keep.shape[0], k, dtype=torch.bool, device=device)
        full[:, :slots] = keep.to(device)
        mask = mask & full.repeat_interleave(group, 0)[None, :, None, :]
    return mask


def window_visible(
    q: int, k: int, window: int, slot_pos: torch.Tensor | None, start: int, device: Any = None
) -> torch.Tensor:
    """Bool ``[kv_head or 1, q, k]``: causal and within ``window`` by token position.

    Without ``slot_pos`` the ``k`` keys are consecutive positions ending at the last query; with it the
    first ``slots`` keys sit at ``slot_pos [kv_head, slots]`` and the rest at ``start, start + 1, ...``.
    """
    if slot_pos is None:
        kpos, qpos = torch.arange(k, device=device)[None], torch.arange(k - q, k, device=device)
    else:
        slot_pos = slot_pos.to(device)
        new = start + torch.arange(k - slot_pos.shape[-1], device=device)
        kpos = torch.cat([slot_pos, new.expand(slot_pos.shape[0], -1)], -1)
        qpos = new[new.numel() - q :]
    diff = qpos[None, :, None] - kpos[:, None, :]  # [h, q, k]: how far back each key is
    return (diff >= 0) & (diff < window)


def _mask(query: torch.Tensor, key: torch.Tensor, layer: int, window: int | None) -> torch.Tensor | None:
    """The bool mask ``[1, q_head or 1, q, k]`` of one call (None: every key visible)."""
    state = _STATE.get() or EvictState()
    q, k = query.shape[2], key.shape[2]
    group = query.shape[1] // key.shape[1]
    mask = build_mask(q, k, group, state.masks.get(layer), query.device)
    if not window:
        return mask
    vis = window_visible(q, k, window, state.positions.get(layer), state.start, query.device)
    vis = (vis.repeat_interleave(group, 0) if vis.shape[0] > 1 else vis)[None]
    return vis if mask is None else mask & vis


def _prune_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` entry point: query ``[b, q_head, q, d]``, key/value ``[b, kv_head, k, d]``;
    returns ``([b, q, q_head, d_v], None)`` like transformers' sdpa path."""
    call = interface_args("kvscope prune", query, scaling, kwargs)
    mask = _mask(query, key, module.layer_idx, call.window)
    if call.softcap:
        out = softcapped_attention(query, key, value, mask, call.scaling, call.softcap)[0]
    else:
        group = query.shape[1] // key.shape[1]
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=call.scaling, enable_gqa=group > 1
        )
    return interface_output(out)


def _no_mask(*_args: Any, **_kwargs: Any) -> None:
    """Mask builder for ``NAME``: nothing, the attention function builds its own."""
    return None


def register() -> None:
    """Register the attention function and its (empty) mask builder with transformers, once."""
    register_attention(NAME, _prune_attention, _no_mask)


@contextlib.contextmanager
def evicting(
    model: Any,
    masks: dict[int, torch.Tensor] | None = None,
    positions: dict[int, torch.Tensor] | None = None,
    start: int = 0,
) -> Iterator[None]:
    """Route ``model``'s attention through ``_prune_attention`` with per-layer keep masks.

    ``masks``: ``{layer: bool [kv_head, slots]}``; layers absent from it are not masked. ``positions``:
    ``{layer: int64 [kv_head, slots]}``, the token position of each cached slot of a sliding-window layer,
    and ``start`` the position of the first token after them (see the module docstring). The model's
    previous attention implementation is restored on exit.
    """
    register()
    token = _STATE.set(EvictState(masks or {}, positions or {}, start))
    try:
        with routed(model, NAME):
            yield
    finally:
        _STATE.reset(token)
