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
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from kvscope.attention import causal_visible, register_attention, routed
from kvscope.errors import KvscopeError

NAME = "kvscope_prune"
_MASKS: contextvars.ContextVar[dict[int, torch.Tensor] | None] = contextvars.ContextVar(
    "kvscope_prune_masks", default=None
)


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
    if kwargs.get("s_aux") is not None or kwargs.get("softcap") or kwargs.get("sliding_window"):
        raise KvscopeError(
            "kvscope prune supports plain full causal attention only (no sliding window, "
            "soft-capping or attention sinks)"
        )
    masks = _MASKS.get()
    keep = masks.get(module.layer_idx) if masks else None
    q, k = query.shape[2], key.shape[2]
    group = query.shape[1] // key.shape[1]
    mask = build_mask(q, k, group, keep, query.device)
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=mask,
        scale=scaling,  # model's scaling
        enable_gqa=group > 1,
    )
    return out.transpose(1, 2).contiguous(), None


def _no_mask(*_args: Any, **_kwargs: Any) -> None:
    """Mask builder for ``NAME``: nothing, the attention function builds its own."""
    return None


def register() -> None:
    """Register the attention function and its (empty) mask builder with transformers, once."""
    register_attention(NAME, _prune_attention, _no_mask)


@contextlib.contextmanager
def evicting(model: Any, masks: dict[int, torch.Tensor] | None = None) -> Iterator[None]:
    """Route ``model``'s attention through ``_prune_attention`` with per-layer keep masks.

    ``masks``: ``{layer: bool [kv_head, slots]}``; layers absent from it are not masked. The model's
    previous attention implementation is restored on exit.
    """
    register()
    token = _MASKS.set(masks or None)
    try:
        with routed(model, NAME):
            yield
    finally:
        _MASKS.reset(token)
