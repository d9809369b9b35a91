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
    """Each layer's k_proj and v_proj weight matrices ``[kv_head*head_dim, hidden]``."""
    from kvscope.hfcache import attention_modules

    mods = attention_modules(model)
    return [m.k_proj.weight for m in mods], [m.v_proj.weight for m in mods]


def weight_magnitudes(k_weights: list[torch.Tensor], v_weights: list[torch.Tensor]) -> WeightMagnitudes:
    """Histograms of |k_proj| and |v_proj| weights."""
    return WeightMagnitudes(k_proj=weight_hist(k_weights), v_proj=weight_hist(v_weights))
