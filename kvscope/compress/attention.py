"""The attention function ``ks.compress`` routes a model through while its block is active.

Registered with transformers' ``AttentionInterface`` under ``"kvscope_compress"`` (on first use), with
transformers' own SDPA mask builder, so ``attention_mask`` arrives as a bool ``[batch, 1, q, slots]``
(True = visible: causal and padding) or ``None`` (nothing hidden). The cache stays dense: evicted slots
are hidden by a per-layer keep mask ``[batch, kv_head, slots]`` (True = kept), repeated for the q_heads
of each kv_head's GQA group, so a hidden slot gets exactly zero probability from every q_head that reads
it. Slots and positions never change, so generate's ``cache_position``/RoPE positions stay true.

Every family ``kvscope.archs`` describes works: fused QKV and multi-query attention look the same from
here; Gemma 2's logit soft-capping (``softcap``) is applied by hand as the model does; a sliding-window
layer's cache is made dense before the prefill (:func:`dense_prefill`), its window then comes in the mask
transformers builds (``[batch, 1, q, slots]`` with ``p - window < j <= p``), and the session keeps only
the last ``window - 1`` slots after each step, as the model's own cache does.

The prefill call (the first forward of a sequence) is computed row by row on each row's real tokens
(left padding cut off) by :func:`kvscope.attention.chunked_attention`, the function ``kvscope prune`` and
``kvscope bench`` prefill with, which also yields the attention each key received; the queries are kept
for the strategy.
"""

from __future__ import annotations

import contextvars
from typing import Any

import torch
import torch.nn.functional as F

from kvscope.archs import layer_windows
from kvscope.attention import causal_visible, softcapped_attention
from kvscope.attention_interface import interface_args, interface_output, register_attention

NAME = "kvscope_compress"
ACTIVE: contextvars.ContextVar[Any] = contextvars.ContextVar("kvscope_compress_session", default=None)


def visible(mask: torch.Tensor | None, keep: torch.Tensor | None, q: int, group: int) -> torch.Tensor | None:
    """Bool ``[batch or 1, q_head or 1, q, slots]`` for SDPA, or ``None`` when every slot is visible.

    ``mask``: transformers' bool ``[batch, 1, q, slots]`` or ``None``; ``keep``: ``[batch, kv_head, slots]``
    (True = kept) or ``None``.
    """
    if keep is None:
        if mask is None and q > 1:
            return None  # plain causal: SDPA's is_causal is not used, so build it
        return mask
    slots = keep.shape[-1]
    base = mask if mask is not None else causal_visible(q, slots, keep.device)[None, None]
    return base & keep.repeat_interleave(group, 1)[:, :, None, :]


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor | None,
    scaling: float,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SDPA over ``query`` ``[b, q_head, q, d]`` and ``key``/``value`` ``[b, kv_head, slots, d]``; with a
    logit ``softcap`` (Gemma 2) the soft-capped attention by hand, as the model computes it.

    Returns ``(out [b, q_head, q, d], None)``; ``allowed`` as :func:`visible` returns it.
    """
    q, group = query.shape[2], query.shape[1] // key.shape[1]
    causal = allowed is None and q > 1 and q == key.shape[2]  # a whole prefill: SDPA's own causal kernel
    if allowed is None and q > 1 and (softcap or not causal):
        allowed, causal = causal_visible(q, key.shape[2], query.device)[None, None], False
    if softcap:
        return softcapped_attention(query, key, value, allowed, scaling, softcap)[0], None
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=allowed, is_causal=causal, scale=scaling, enable_gqa=group > 1
    )
    return out, None


def attend_with_probs(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor | None,
    scaling: float,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`attend`, plus the probabilities ``[b, q_head, q, slots]`` (float32), for decode-time scores."""
    if allowed is None:
        allowed = causal_visible(query.shape[2], key.shape[2], query.device)[None, None]
    return softcapped_attention(query, key, value, allowed, scaling, softcap)


def dense_prefill(model: Any, args: tuple, kwargs: dict, cache: Any) -> tuple[tuple, dict] | None:
    """Before a prefill of a model with sliding-window layers: the (empty) cache with each sliding layer
    replaced by a full one, so that slots stay positions on every layer (a fresh full cache when the
    caller passed none). The window is then applied by the mask transformers builds from the config
    (``sliding_window``), and the session drops what the model's own cache would not hold. Returns the
    forward's new ``(args, kwargs)`` for a forward pre-hook, or None to leave them as they are."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    from kvscope.compat import cache_keyword

    if not any(window for window in layer_windows(model.config)):
        return None
    if cache is None:
        if not kwargs.get("use_cache", getattr(model.config, "use_cache", True)):
            return None
        return args, {**kwargs, cache_keyword(model): DynamicCache()}
    layers = getattr(cache, "layers", None) or []
    for i, layer in enumerate(layers):
        if getattr(layer, "is_sliding", False) and getattr(layer, "keys", None) is None:
            layers[i] = DynamicLayer()
    return None


def _compress_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` entry point; returns ``([b, q, q_head, d], None)`` like transformers' sdpa."""
    call = interface_args("ks.compress", query, scaling, kwargs)
    session = ACTIVE.get()
    mask = attention_mask if isinstance(attention_mask, torch.Tensor) else None
    if mask is not None and mask.dtype != torch.bool:
        mask = mask > torch.finfo(mask.dtype).min / 2
    if session is None:
        out, _ = attend(query, key, value, mask, call.scaling, call.softcap)
    else:
        out = session.attention(module.layer_idx, query, key, value, mask, call.scaling, call.softcap, call.window)
    return interface_output(out)


def register() -> None:
    """Register the attention function with transformers' SDPA mask builder, once per process."""
    from transformers.masking_utils import sdpa_mask

    register_attention(NAME, _compress_attention, sdpa_mask)
