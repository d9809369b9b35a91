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

Other layouts are read through ``PROJECTIONS`` (a registry of module names): a fused projection (GPT-2's
``c_attn``, Phi-3's ``qkv_proj``, GPT-BigCode's multi-query ``c_attn``) is split into its q, k and v
columns; q/k norms (Qwen3, Gemma 3, OLMo 2) are hooked after the norm, which is what RoPE rotates. A model
without RoPE (absolute positions: GPT-2, GPT-BigCode) caches its keys as projected, so "after RoPE" equals
"before". The by-hand attention uses the layer's own soft-capping (Gemma 2) and sliding window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.archs import layer_attention
from kvscope.attention import causal_attention
from kvscope.compat import forward
from kvscope.errors import KvscopeError

ATTENTION_TOLERANCE = 1e-4  # float32 parity of the hand-made attention with the model's o_proj input


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
    softcap: float | None = None
    window: int | None = None

    def by_hand(
        self, keys: torch.Tensor | None = None, values: Any = "own", k_positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """:func:`causal_attention` of ``q_post`` with this layer's scaling, soft-capping and window; keys and
        values default to this call's own (``values=None`` for probabilities only)."""
        keys = self.k_post if keys is None else keys
        values = self.v if isinstance(values, str) else values
        return causal_attention(
            self.q_post,
            keys,
            values,
            self.scaling,
            q_positions=self.positions,
            k_positions=self.positions if k_positions is None and keys is self.k_post else k_positions,
            softcap=self.softcap,
            window=self.window,
        )

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


def rope_tables(
    model: Any, positions: torch.Tensor, head_dim: int, layer_type: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` ``[position, head_dim]`` float32 from the model's own rotary module (for ``layer_type``
    where the model keeps one rotary table per layer type, as Gemma 3 does). A model without RoPE gets the
    identity (cos 1, sin 0)."""
    import inspect

    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    if rotary is None:
        return torch.ones(positions.numel(), head_dim), torch.zeros(positions.numel(), head_dim)
    device = next(model.parameters()).device
    probe = torch.zeros(1, positions.numel(), head_dim, device=device, dtype=torch.float32)
    extra = (layer_type,) if "layer_type" in inspect.signature(rotary.forward).parameters else ()
    with torch.no_grad():
        cos, sin = rotary(probe, positions.reshape(1, -1).to(device), *extra)
    return cos[0].float().cpu(), sin[0].float().cpu()


def _heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``[1, P, heads * head_dim] -> [heads, P, head_dim]`` float32 CPU copy."""
    x = x[0].detach().to(device="cpu", dtype=torch.float32, copy=True)
    return x.reshape(x.shape[0], -1, head_dim).transpose(0, 1).contiguous()


# Module names per role, first match wins: separate projections (and q/k norms after them), then fused ones.
PROJECTIONS: dict[str, tuple[str, ...]] = {
    "q": ("q_proj",),
    "k": ("k_proj",),
    "v": ("v_proj",),
    "qkv": ("qkv_proj", "c_attn"),
    "o": ("o_proj", "c_proj", "dense"),
}


def _find(attn: Any, role: str) -> Any:
    return next(
        (getattr(attn, n) for n in PROJECTIONS[role] if isinstance(getattr(attn, n, None), torch.nn.Module)), None
    )


def _hook_targets(attn: Any, info: Any, store: dict[str, torch.Tensor]) -> list[tuple[Any, Any]]:
    """``(module, hook)`` pairs that put q, k and v of one attention module, ``[1, P, heads * head_dim]``
    as projected, into ``store``."""

    def put(name: str):
        return lambda _m, _i, out: store.__setitem__(name, out.detach().float())

    if all(_find(attn, r) is not None for r in ("q", "k", "v")):
        return [(_find(attn, r), put(r)) for r in ("q", "k", "v")]
    fused = _find(attn, "qkv")
    if fused is None:
        raise KvscopeError(f"{type(attn).__name__}: no q/k/v projections (q_proj, k_proj, v_proj or a fused qkv)")
    sizes = [info.q_heads * info.head_dim, info.kv_heads * info.head_dim, info.kv_heads * info.head_dim]

    def split(_m, _i, out):
        store.update(zip("qkv", out.detach().float().split(sizes, dim=-1)))

    return [(fused, split)]


def _normed(attn: Any, role: str, x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``x [1, P, heads * head_dim]`` through the layer's ``q_norm``/``k_norm`` where it has one: per head
    (Qwen3, Gemma 3: a norm of size head_dim) or over all heads (OLMo 2), as the model applies it."""
    norm = getattr(attn, f"{role}_norm", None)
    if not isinstance(norm, torch.nn.Module):
        return x
    weight = getattr(norm, "weight", None)
    per_head = weight is not None and weight.numel() == head_dim
    with torch.inference_mode():
        y = norm(x.view(*x.shape[:-1], -1, head_dim).to(weight.dtype)) if per_head else norm(x)
    return y.reshape(x.shape).float()


@contextlib.contextmanager
def projection_hooks(model: Any, layer: int, info: Any, store: dict[str, torch.Tensor]) -> Iterator[None]:
    """Record ``layer``'s q, k (after q_norm/k_norm where present), v and the output projection's input into
    ``store``. Each call overwrites the previous one, so after a forward ``store`` holds the last call's."""
    attn = layer_attention(model)[layer].module
    out_proj = _find(attn, "o")
    if out_proj is None:
        raise KvscopeError(f"{type(attn).__name__}: no output projection (o_proj, c_proj or dense) to hook")
    handles = [mod.register_forward_hook(hook) for mod, hook in _hook_targets(attn, info, store)]
    handles.append(out_proj.register_forward_pre_hook(lambda _m, args: store.__setitem__("o", args[0].detach())))
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
    with torch.inference_mode(), projection_hooks(model, layer, info, store):
        out = forward(model, cache, input_ids=input_ids.to(device), **forward_kwargs)
    attn = layer_attention(model)[layer]
    cos, sin = rope_tables(model, positions, info.head_dim, attn.layer_type)
    d = info.head_dim
    store = {name: _heads(_normed(attn.module, name, x, d), d) for name, x in store.items()}
    proj = LayerProjections(
        layer=layer,
        q_pre=store["q"],
        k_pre=store["k"],
        v=store["v"],
        o_in=store["o"],
        q_post=apply_rope(store["q"], cos, sin),
        k_post=apply_rope(store["k"], cos, sin),
        positions=positions,
        scaling=attn.scaling,
        softcap=attn.softcap,
        window=attn.window,
    )
    return proj, out
