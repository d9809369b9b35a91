"""Hooked Q/K/V/O projections of one layer, RoPE as the model applies it, and attention by hand.

The Llama attention block (Touvron et al., 2023) computes, for hidden states ``x [position, hidden]``::

    q = q_proj(x) -> [q_head, position, head_dim]      k, v = k_proj(x), v_proj(x) -> [kv_head, ...]
    q', k' = RoPE(q), RoPE(k)                            (Su et al., "RoFormer", 2021)
    out[h] = softmax(q'[h] k'[h // group]^T * scale + causal mask) v[h // group]
    o_proj(concat_h out[h])

where ``group = q_heads // kv_heads`` (grouped-query attention, Ainslie et al., EMNLP 2023). The cache
stores ``k'`` (post-RoPE) and ``v``. Here forward hooks record ``q``, ``k``, ``v`` (pre-RoPE) and the
o_proj *input* (the model's own attention output), RoPE is applied with the model's own rotary module,
and attention is recomputed by hand (``kvscope.attention.causal_attention``) so that the two can be compared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.compat import forward
from kvscope.errors import KvscopeError
from kvscope.hfcache import attention_modules


@dataclass
class LayerProjections:
    """What one layer computed for ``P`` query positions (float32, CPU, batch row 0).

    ``q_pre``/``q_post`` ``[q_head, P, head_dim]``; ``k_pre``/``k_post``/``v`` ``[kv_head, P, head_dim]``;
    ``o_in`` ``[q_head, P, head_dim]`` is the o_proj input (the model's attention output per q_head);
    ``positions`` ``[P]`` the token positions used for RoPE. ``scaling`` multiplies ``q·k``.
    """

    layer: int
    q_pre: torch.Tensor
    k_pre: torch.Tensor
    v: torch.Tensor
    o_in: torch.Tensor
    q_post: torch.Tensor
    k_post: torch.Tensor
    positions: torch.Tensor
    scaling: float

    @property
    def group(self) -> int:
        """Query heads per kv_head: q_head ``h`` reads kv_head ``h // group``."""
        return self.q_pre.shape[0] // self.k_pre.shape[0]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last axis (the "half-split" RoPE pairing: channel ``i`` with ``i + d/2``)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [head, position, head_dim]`` by ``cos``/``sin`` ``[position, head_dim]``: ``x cos + rot(x) sin``.

    Each channel pair ``(i, i + d/2)`` turns by the angle ``position * theta^(-2i/d)`` (RoFormer, Su et al. 2021),
    the pairing transformers' Llama uses. Norms are preserved (a rotation).
    """
    return x * cos.unsqueeze(0) + rotate_half(x) * sin.unsqueeze(0)


def rope_tables(model: Any, positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` ``[position, head_dim]`` float32 from the model's own rotary module."""
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    if rotary is None:
        raise KvscopeError(f"{type(model).__name__} has no model.rotary_emb: only RoPE decoders are supported")
    device = next(model.parameters()).device
    probe = torch.zeros(1, positions.numel(), head_dim, device=device, dtype=torch.float32)
    with torch.no_grad():
        cos, sin = rotary(probe, positions.reshape(1, -1).to(device))
    return cos[0].float().cpu(), sin[0].float().cpu()


def _heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``[1, P, heads * head_dim] -> [heads, P, head_dim]`` float32 CPU copy."""
    x = x[0].detach().to(device="cpu", dtype=torch.float32, copy=True)
    return x.reshape(x.shape[0], -1, head_dim).transpose(0, 1).contiguous()


@contextlib.contextmanager
def projection_hooks(model: Any, layer: int, head_dim: int, store: dict[str, torch.Tensor]) -> Iterator[None]:
    """Record ``layer``'s q, k (after q_norm/k_norm where present), v and the o_proj input into ``store``.

    Each call overwrites the previous one, so after a forward ``store`` holds the last call's tensors.
    """
    attn = attention_modules(model)[layer]
    targets = {
        "q": getattr(attn, "q_norm", None) or attn.q_proj,
        "k": getattr(attn, "k_norm", None) or attn.k_proj,
        "v": attn.v_proj,
    }
    handles = [
        mod.register_forward_hook(lambda _m, _i, out, n=name: store.__setitem__(n, _heads(out, head_dim)))
        for name, mod in targets.items()
    ]
    handles.append(
        attn.o_proj.register_forward_pre_hook(lambda _m, args: store.__setitem__("o", _heads(args[0], head_dim)))
    )
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def hooked_forward(
    model: Any, info: Any, input_ids: torch.Tensor, layer: int, cache: Any = None, **forward_kwargs: Any
) -> tuple[LayerProjections, Any]:
    """Run ``model(input_ids, **forward_kwargs)`` on top of ``cache`` (if any) with hooks on ``layer``; return its
    projections and output (whose cache ``compat.output_cache`` reads).

    ``position_ids`` in ``forward_kwargs`` (default ``past_length + arange(P)``) set the RoPE positions.
    """
    start = cache.get_seq_length() if cache is not None else 0
    n = input_ids.shape[1]
    pos = forward_kwargs.get("position_ids")
    positions = (pos[0].cpu() if pos is not None else torch.arange(start, start + n)).to(torch.int64)
    store: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device
    with torch.inference_mode(), projection_hooks(model, layer, info.head_dim, store):
        out = forward(model, cache, input_ids=input_ids.to(device), **forward_kwargs)
    cos, sin = rope_tables(model, positions, info.head_dim)
    attn = attention_modules(model)[layer]
    proj = LayerProjections(
        layer=layer,
        q_pre=store["q"],
        k_pre=store["k"],
        v=store["v"],
        o_in=store["o"],
        q_post=apply_rope(store["q"], cos, sin),
        k_post=apply_rope(store["k"], cos, sin),
        positions=positions,
        scaling=float(attn.scaling),
    )
    return proj, out
