"""Distribution of all cached key and value elements: histograms, kurtosis and outlier share.

Heavy tails (high excess kurtosis, a visible outlier share) are what makes a single uniform
quantization grid waste its levels; this is the evidence behind per-channel keys in KIVI.
An element is an *outlier* when it lies more than ``outlier_sigma`` standard deviations from the
mean of its tensor (all layers pooled); for a Gaussian the 6-sigma share is about 2e-9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.snapshot import KVSnapshot
from kvscope.stats import excess_kurtosis

DEFAULT_BINS = 121
DEFAULT_OUTLIER_SIGMA = 6.0


@dataclass(frozen=True)
class Histogram:
    """``counts[i]`` elements fall in ``[edges[i], edges[i+1])``; summary numbers of the same data."""

    edges: np.ndarray
    counts: np.ndarray
    kurtosis: float
    outlier_share: float
    mean: float
    std: float
    min: float
    max: float
    n: int


@dataclass(frozen=True)
class ValueDistribution:
    key: Histogram
    value: Histogram
    outlier_sigma: float
    layer_kurtosis_k: np.ndarray  # [layer]
    layer_kurtosis_v: np.ndarray


def histogram(x: np.ndarray, bins: int = DEFAULT_BINS, outlier_sigma: float = DEFAULT_OUTLIER_SIGMA) -> Histogram:
    """Histogram over symmetric edges ``[-max|x|, max|x|]`` plus kurtosis and outlier share."""
    x = np.asarray(x).ravel()
    lim = float(np.abs(x).max()) if x.size else 1.0
    lim = lim if lim > 0 else 1.0
    counts, edges = np.histogram(x, bins=bins, range=(-lim, lim))
    mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
    share = float((np.abs(x - mean) > outlier_sigma * std).mean()) if std > 0 else 0.0
    return Histogram(
        edges=edges,
        counts=counts,
        kurtosis=excess_kurtosis(x),
        outlier_share=share,
        mean=mean,
        std=std,
        min=float(x.min()),
        max=float(x.max()),
        n=int(x.size),
    )


def value_distribution(
    snapshot: KVSnapshot, bins: int = DEFAULT_BINS, outlier_sigma: float = DEFAULT_OUTLIER_SIGMA
) -> ValueDistribution:
    """Histograms of every key and every value element (all layers, kv_heads, positions)."""
    k = np.concatenate([t.reshape(-1).float().numpy() for t in snapshot.keys])
    v = np.concatenate([t.reshape(-1).float().numpy() for t in snapshot.values])
    return ValueDistribution(
        key=histogram(k, bins, outlier_sigma),
        value=histogram(v, bins, outlier_sigma),
        outlier_sigma=outlier_sigma,
        layer_kurtosis_k=np.array([excess_kurtosis(t.numpy()) for t in snapshot.keys]),
        layer_kurtosis_v=np.array([excess_kurtosis(t.numpy()) for t in snapshot.values]),
    )
