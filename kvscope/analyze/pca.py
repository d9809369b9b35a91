"""PCA of per-position keys and values of one layer.

Each position's vector is the concatenation of its kv_heads (``kv_head*head_dim`` values), taken
post-RoPE as cached, so part of what the first components show is position itself (RoPE rotates
keys by an angle proportional to position). Computed from the eigenvectors of the centred scatter matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.snapshot import KVSnapshot


@dataclass(frozen=True)
class PCAResult:
    """``key``/``value``: ``[position, 2]`` coordinates; ``*_explained``: share of variance of PC1, PC2;
    ``positions``: absolute positions of the rows."""

    layer: int
    key: np.ndarray
    value: np.ndarray
    key_explained: np.ndarray
    value_explained: np.ndarray
    positions: np.ndarray


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-2 principal coordinates ``[n, 2]`` of rows of ``x`` and their explained-variance shares
    (eigenvectors of the ``dim x dim`` scatter matrix; signs are arbitrary).

    Missing components (fewer than 3 rows, or rank < 2) are zero columns with share 0.
    """
    x = np.asarray(x, dtype=np.float64)
    c = x - x.mean(axis=0, keepdims=True)
    coords, share = np.zeros((x.shape[0], 2)), np.zeros(2)
    if x.shape[0] < 2:
        return coords, share
    evals, evecs = np.linalg.eigh(c.T @ c)  # [dim] ascending; cheaper than an SVD for P >> dim
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]
    total = float(evals.sum())
    m = min(2, int((evals > total * 1e-12).sum())) if total > 0 else 0
    coords[:, :m] = c @ evecs[:, :m]
    if total > 0:
        share[:m] = evals[:m] / total
    return coords, share


def pca_by_position(snapshot: KVSnapshot, layer: int) -> PCAResult:
    """2-D PCA of ``layer``'s per-position key vectors and, separately, value vectors."""
    k = snapshot.keys[layer].permute(1, 0, 2).reshape(snapshot.keys[layer].shape[1], -1).numpy()
    v = snapshot.values[layer].permute(1, 0, 2).reshape(snapshot.values[layer].shape[1], -1).numpy()
    kc, ke = pca_2d(k)
    vc, ve = pca_2d(v)
    return PCAResult(
        layer=layer,
        key=kc,
        value=vc,
        key_explained=ke,
        value_explained=ve,
        positions=snapshot.layer_positions(layer).numpy(),
    )
