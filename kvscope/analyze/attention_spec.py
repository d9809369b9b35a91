"""What the analyses need to recompute a model's attention from a snapshot: its score scale and
soft-capping, per layer, and which layers hold every position.

With the model at hand the scale is each attention module's own ``scaling`` and the cap the config's
``attn_logit_softcapping``; from a saved snapshot alone the scale is the default ``head_dim**-0.5``
(``source`` says which), and the analyses check it against the captured attention (``parity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvscope.snapshot import KVSnapshot


@dataclass(frozen=True)
class AttentionSpec:
    """``scaling[layer]``; ``softcap`` (None = none); ``source``: "model" or "default head_dim**-0.5"."""

    scaling: list[float]
    softcap: float | None
    source: str


def attention_spec(snapshot: KVSnapshot, model: Any = None) -> AttentionSpec:
    """The scale and cap to recompute ``snapshot``'s attention (see the module doc)."""
    default = snapshot.keys[0].shape[-1] ** -0.5
    if model is None:
        return AttentionSpec([default] * snapshot.n_layers, None, "default head_dim**-0.5")
    from kvscope.hfcache import attention_modules

    mods = attention_modules(model)
    scaling = [float(getattr(m, "scaling", None) or default) for m in mods]
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cap = getattr(cfg, "attn_logit_softcapping", None)
    return AttentionSpec(scaling, float(cap) if cap else None, "model")


def full_layers(snapshot: KVSnapshot) -> list[int]:
    """Layers whose cache holds every position (not a sliding window)."""
    return [l for l in range(snapshot.n_layers) if snapshot.keys[l].shape[1] == snapshot.n_positions]


def parity(snapshot: KVSnapshot, layer: int, spec: AttentionSpec) -> float:
    """Relative max difference between the attention received recomputed with ``spec`` and the one
    captured, for one full layer (NaN without attention data or queries)."""
    if not snapshot.has_attention or snapshot.queries is None:
        return float("nan")
    import torch

    from kvscope.attention import causal_probs

    q, k = snapshot.queries[layer], snapshot.keys[layer]
    a = causal_probs(q, k, spec.scaling[layer], spec.softcap)  # [q_head, P, P]
    mine = a.sum(1, dtype=torch.float64).reshape(k.shape[0], -1, k.shape[1]).sum(1)
    ref = snapshot.attention_received[layer].double()
    return float((mine - ref).abs().max() / ref.abs().max().clamp(min=1e-12))
