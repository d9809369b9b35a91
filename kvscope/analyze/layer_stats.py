"""Per-layer and per-(layer, kv_head) statistics of the cached keys and values.

- sparsity: share of elements with ``|x| < threshold`` (1e-5 by default): exact-ish zeros, not a
  share of a global maximum (which outlier channels would inflate).
- K–V correlation: per kv_head, the Spearman rank correlation across positions between each
  token's key L2 norm and value L2 norm, averaged over kv_heads. (An element-wise correlation of K
  and V would pair key channel i with value channel i, which live in unrelated bases.)
- std and mean |x| over all elements of the layer.
- per-channel mean |x| (``[layer, kv_head*head_dim]``) and the outlier-channel ratio: the largest
  channel's mean |x| over the median channel's (KIVI, Liu et al. 2024: keys have fixed outlier channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.analyze.magnitudes import layer_norms
from kvscope.snapshot import KVSnapshot
from kvscope.stats import spearman

DEFAULT_SPARSITY_THRESHOLD = 1e-5


@dataclass(frozen=True)
class LayerStats:
    """Arrays indexed ``[layer]`` unless said otherwise; ``_k`` keys, ``_v`` values."""

    threshold: float
    sparsity_k: np.ndarray
    sparsity_v: np.ndarray
    head_sparsity_k: np.ndarray  # [layer, kv_head]
    head_sparsity_v: np.ndarray  # [layer, kv_head]
    kv_norm_spearman: np.ndarray  # [layer], mean over kv_heads
    head_kv_norm_spearman: np.ndarray  # [layer, kv_head]
    std_k: np.ndarray
    std_v: np.ndarray
    mean_abs_k: np.ndarray
    mean_abs_v: np.ndarray
    channel_mean_abs_k: np.ndarray  # [layer, kv_head*head_dim]
    channel_mean_abs_v: np.ndarray
    outlier_ratio_k: np.ndarray  # [layer] max channel / median channel of mean |x|
    outlier_ratio_v: np.ndarray


def _per_layer(tensors, threshold: float) -> dict[str, np.ndarray]:
    rows: dict[str, list] = {"sp": [], "hsp": [], "std": [], "mabs": [], "ch": []}
    for t in tensors:
        x = t.double()
        small = (x.abs() < threshold).double()
        rows["sp"].append(float(small.mean()))
        rows["hsp"].append(small.mean(dim=(1, 2)).numpy())
        rows["std"].append(float(x.std(unbiased=False)))
        rows["mabs"].append(float(x.abs().mean()))
        rows["ch"].append(x.abs().mean(dim=1).reshape(-1).numpy())  # [kv_head*head_dim]
    return {k: np.array(v) for k, v in rows.items()}


def _outlier_ratio(channels: np.ndarray) -> np.ndarray:
    med = np.median(channels, axis=1)
    return np.where(med > 0, channels.max(axis=1) / np.where(med > 0, med, 1.0), np.nan)


def layer_stats(snapshot: KVSnapshot, threshold: float = DEFAULT_SPARSITY_THRESHOLD) -> LayerStats:
    """All statistics above; ``threshold`` is the |x| below which an element counts as zero."""
    k, v = _per_layer(snapshot.keys, threshold), _per_layer(snapshot.values, threshold)
    kn, vn = layer_norms(snapshot, "keys"), layer_norms(snapshot, "values")
    head_rho = np.array([[spearman(kn[l, h], vn[l, h]) for h in range(kn.shape[1])] for l in range(kn.shape[0])])
    with np.errstate(all="ignore"):
        rho = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in head_rho])
    return LayerStats(
        threshold=threshold,
        sparsity_k=k["sp"],
        sparsity_v=v["sp"],
        head_sparsity_k=k["hsp"],
        head_sparsity_v=v["hsp"],
        kv_norm_spearman=rho,
        head_kv_norm_spearman=head_rho,
        std_k=k["std"],
        std_v=v["std"],
        mean_abs_k=k["mabs"],
        mean_abs_v=v["mabs"],
        channel_mean_abs_k=k["ch"],
        channel_mean_abs_v=v["ch"],
        outlier_ratio_k=_outlier_ratio(k["ch"]),
        outlier_ratio_v=_outlier_ratio(v["ch"]),
    )
