"""How kvscope's attention functions plug into transformers: the ``AttentionInterface`` call's arguments
(:func:`interface_args`), its return layout (:func:`interface_output`), registration once per process
(:func:`register_attention`) and routing a model through a registered function for a block (:func:`routed`).
Used by the recording attention (``kvscope.attention``), the pruning lab's attention
(``kvscope.prune.evict_attention``) and ``ks.compress`` (``kvscope.compress.attention``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.errors import KvscopeError


@dataclass(frozen=True)
class InterfaceArgs:
    """What kvscope's attention functions read of the keywords transformers passes them."""

    scaling: float  # the module's own (head_dim ** -0.5 when it passes none)
    softcap: float | None  # Gemma 2's logit soft-capping, None when off
    window: int | None  # the layer's sliding window (keys at positions p - window < j <= p), None when full


def interface_args(who: str, query: torch.Tensor, scaling: float | None, kwargs: dict[str, Any]) -> InterfaceArgs:
    """Read one ``AttentionInterface`` call's ``scaling`` and keywords (``softcap``, ``sliding_window``);
    ``query`` is ``[b, q_head, q, head_dim]``. Attention sinks (``s_aux``, gpt-oss) are computed by no
    kvscope attention function: a ``KvscopeError`` naming ``who`` says so."""
    if kwargs.get("s_aux") is not None:
        raise KvscopeError(f"{who} does not support attention sinks (s_aux)")
    return InterfaceArgs(
        scaling=scaling if scaling is not None else query.shape[-1] ** -0.5,
        softcap=kwargs.get("softcap") or None,
        window=kwargs.get("sliding_window") or None,
    )


def interface_output(out: torch.Tensor) -> tuple[torch.Tensor, None]:
    """``out`` ``[b, q_head, q, d_v]`` as an ``AttentionInterface`` function returns it: ``([b, q, q_head, d_v],
    None)`` (no attention weights), like transformers' sdpa path."""
    return out.transpose(1, 2).contiguous(), None


_REGISTERED: set[str] = set()


def register_attention(name: str, fn: Any, mask_builder: Any) -> None:
    """Register ``fn`` with transformers' ``AttentionInterface`` (and ``mask_builder`` with its
    ``AttentionMaskInterface``) under ``name``, once per process."""
    if name in _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(name, fn)
    AttentionMaskInterface.register(name, mask_builder)
    _REGISTERED.add(name)


@contextlib.contextmanager
def routed(model: Any, name: str) -> Iterator[None]:
    """Run ``model``'s attention through the registered ``name``; restore the previous one on exit."""
    previous = model.config._attn_implementation
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)
