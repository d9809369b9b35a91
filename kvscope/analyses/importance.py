"""Is magnitude a good proxy of importance? Each proxy is checked against attention received.

Per token, per layer and kv_head, three proxies of importance:

- ``magnitude``: (||k|| + ||v||) / 2, the seeds' proxy (high = important), with L2 norms;
- ``key_norm``: -||k||, KNorm (Devoto et al., EMNLP 2024: a low key norm tends to mean high attention);
- ``value_norm``: ||v||.

The reference is attention received per query that can see the key (H2O, Zhang et al. 2023).
For each layer we take the Spearman correlation between proxy and reference over positions, per
kv_head, and average over kv_heads. With a leave-one-out ground truth, each proxy's per-token mean over layers and kv_heads, and
attention received, are also correlated with the loss of removing it, ``-delta_loglik``
(``kvscope prune --leave-one-out`` writes ``delta_loglik`` = log-likelihood with the token evicted minus
without eviction, so negative = needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvscope.analyses.magnitudes import layer_norms
from kvscope.analyses.stats import spearman
from kvscope.errors import KvscopeError
from kvscope.snapshot import KVSnapshot

PROXIES = ("magnitude", "key_norm", "value_norm")
HOLDS = 0.3  # |median Spearman| below this is "no meaningful relation"


@dataclass(frozen=True)
class Importance:
    """``layer_spearman[proxy]``: ``[layer]`` Spearman vs attention received; ``median[proxy]`` over
    layers; ``verdict``: one sentence on "low magnitude = low importance"; ``ground_truth[proxy]``:
    Spearman vs ``-delta_loglik`` (also key ``attention``), empty without a ground truth."""

    layer_spearman: dict[str, np.ndarray]
    median: dict[str, float]
    verdict: str
    holds: bool | None
    ground_truth: dict[str, float] = field(default_factory=dict)
    ground_truth_note: str = ""


def proxies(snapshot: KVSnapshot) -> dict[str, np.ndarray]:
    """Each proxy as ``[layer, kv_head, position]`` (NaN where a layer holds no slot)."""
    k, v = layer_norms(snapshot, "keys"), layer_norms(snapshot, "values")
    return {"magnitude": (k + v) / 2, "key_norm": -k, "value_norm": v}


def _layer_rho(proxy: np.ndarray, reference: np.ndarray) -> np.ndarray:
    rows = []
    for l in range(proxy.shape[0]):
        rho = [spearman(proxy[l, h], reference[l, h]) for h in range(proxy.shape[1])]
        rows.append(np.nanmean(rho) if np.isfinite(rho).any() else np.nan)
    return np.array(rows)


def _verdict(rho: float) -> tuple[str, bool | None]:
    if not np.isfinite(rho):
        return "Too few tokens to tell whether low magnitude means low attention.", None
    if rho >= HOLDS:
        return (f"On this model and prompt, \"low magnitude = low importance\" holds: magnitude and "
                f"attention received correlate (median Spearman {rho:+.2f} over layers)."), True
    if rho <= -HOLDS:
        return (f"On this model and prompt, \"low magnitude = low importance\" is inverted: "
                f"low-magnitude tokens receive more attention (median Spearman {rho:+.2f})."), False
    return (f"On this model and prompt, \"low magnitude = low importance\" does not hold: magnitude "
            f"barely predicts attention received (median Spearman {rho:+.2f})."), False


def importance(snapshot: KVSnapshot, delta_loglik: np.ndarray | None = None) -> Importance:
    """Spearman of each proxy against attention received per layer; needs attention data."""
    if not snapshot.has_attention:
        raise KvscopeError("importance needs attention received (capture with attention)")
    reference = snapshot.mean_attention().double().numpy()
    held = np.isfinite(layer_norms(snapshot, "keys"))
    reference = np.where(held, reference, np.nan)
    scores = proxies(snapshot)
    per_layer = {name: _layer_rho(p, reference) for name, p in scores.items()}
    with np.errstate(all="ignore"):
        median = {n: float(np.nanmedian(r)) if np.isfinite(r).any() else float("nan")
                  for n, r in per_layer.items()}
    verdict, holds = _verdict(median["magnitude"])
    gt, note = {}, ""
    if delta_loglik is not None:
        gt, note = _against_ground_truth(scores, reference, -np.asarray(delta_loglik, dtype=np.float64))
    return Importance(per_layer, median, verdict, holds, gt, note)


def _against_ground_truth(scores, reference, truth) -> tuple[dict[str, float], str]:
    if truth.shape[0] != reference.shape[-1]:
        return {}, (f"ground truth has {truth.shape[0]} tokens but the snapshot has "
                    f"{reference.shape[-1]}; not compared")
    with np.errstate(all="ignore"):
        out = {n: spearman(np.nanmean(p, axis=(0, 1)), truth) for n, p in scores.items()}
        out["attention"] = spearman(np.nanmean(reference, axis=(0, 1)), truth)
    return out, ("Spearman of each proxy (mean over layers and kv_heads) with -delta_loglik, the log-likelihood "
                 "lost when the token is evicted (leave-one-out)")
