"""Histograms of |k_proj| and |v_proj| weights over all layers (needs the model, not a snapshot)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvscope.stats import excess_kurtosis

DEFAULT_BINS = 100


@dataclass(frozen=True)
class WeightHist:
    """Log-spaced histogram of |w|: ``counts[i]`` weights in ``[edges[i], edges[i+1])``; exact zeros
    are counted in ``zeros``. ``layer_mean_abs``: ``[layer]``."""

    edges: np.ndarray
    counts: np.ndarray
    zeros: int
    mean_abs: float
    max_abs: float
    kurtosis: float
    layer_mean_abs: np.ndarray
    n: int


@dataclass(frozen=True)
class WeightMagnitudes:
    k_proj: WeightHist
    v_proj: WeightHist


def weight_hist(weights: list[torch.Tensor], bins: int = DEFAULT_BINS) -> WeightHist:
    """Histogram of |w| over every tensor in ``weights`` (one per layer), log-spaced bins."""
    flat = np.concatenate([w.detach().float().abs().reshape(-1).cpu().numpy() for w in weights])
    nz = flat[flat > 0]
    lo, hi = (float(nz.min()), float(nz.max())) if nz.size else (1e-8, 1.0)
    hi = hi if hi > lo else lo * 10
    counts, edges = np.histogram(nz, bins=np.geomspace(lo, hi * (1 + 1e-9), bins + 1))
    signed = np.concatenate([w.detach().float().reshape(-1).cpu().numpy() for w in weights])
    return WeightHist(
        edges=edges,
        counts=counts,
        zeros=int(flat.size - nz.size),
        mean_abs=float(flat.mean()),
        max_abs=float(flat.max()),
        kurtosis=excess_kurtosis(signed),
        layer_mean_abs=np.array([float(w.detach().float().abs().mean()) for w in weights]),
        n=int(flat.size),
    )


def projection_weights(model) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each layer's k_proj and v_proj weight matrices ``[kv_head*head_dim, hidden]``; a fused projection
    (``qkv_proj``, GPT-2's ``c_attn``) is split into its q, k and v rows."""
    from kvscope.archs import attention_modules

    ks, vs = [], []
    for m in attention_modules(model):
        if hasattr(m, "k_proj") and hasattr(m, "v_proj"):
            ks.append(m.k_proj.weight)
            vs.append(m.v_proj.weight)
            continue
        k, v = _fused_kv(model, m)
        ks.append(k)
        vs.append(v)
    return ks, vs


def _fused_kv(model, attn) -> tuple[torch.Tensor, torch.Tensor]:
    """The k and v rows ``[kv_head*head_dim, hidden]`` of a fused q/k/v projection."""
    from kvscope.configcheck import config_facts
    from kvscope.errors import KvscopeError

    fused = getattr(attn, "qkv_proj", None) or getattr(attn, "c_attn", None)
    if fused is None:
        raise KvscopeError(f"{type(attn).__name__}: no k_proj/v_proj or fused qkv projection")
    facts = config_facts(model.config)
    q, kv = facts["q_heads"] * facts["head_dim"], facts["kv_heads"] * facts["head_dim"]
    w = fused.weight.T if type(fused).__name__ == "Conv1D" else fused.weight  # Conv1D stores [in, out]
    _, k, v = w.split([q, kv, kv], dim=0)
    return k, v


def weight_magnitudes(k_weights: list[torch.Tensor], v_weights: list[torch.Tensor]) -> WeightMagnitudes:
    """Histograms of |k_proj| and |v_proj| weights."""
    return WeightMagnitudes(k_proj=weight_hist(k_weights), v_proj=weight_hist(v_weights))
