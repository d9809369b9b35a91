"""Leave-one-out ground truth for token importance.

For each prompt position ``p`` the token is evicted from every layer and kv_head (all other tokens
kept) and the continuation is scored again: ``delta_loglik[p]`` = summed continuation log-likelihood
(nats) with ``p`` evicted minus the baseline's. Negative = the continuation needed that token.

The proxies that cheap eviction policies use are then ranked against this ground truth with
Spearman's rank correlation, each oriented so that higher means "keep":

- ``magnitude``: mean over layers and kv_heads of mean |K| + mean |V| (the seed's heuristic);
- ``low key norm``: minus the mean key L2 norm (KNorm, Devoto et al., EMNLP 2024);
- ``attention received``: summed attention received (H2O, Zhang et al., NeurIPS 2023);
- ``mean attention``: attention received per query that could see the token (removes the causal
  bias towards early tokens, which more queries see).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kvscope.prune.evict import Prefill
from kvscope.prune.lab import Plan, measure


@dataclass
class LooResult:
    """``delta_loglik`` ``[position]`` (nats); ``proxies`` name -> ``[position]``; ``spearman`` name -> rho
    of the proxy against ``-delta_loglik`` (the loss of likelihood when the token goes)."""

    model: str
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    delta_loglik: np.ndarray
    baseline_loglik: float
    proxies: dict[str, np.ndarray]
    spearman: dict[str, float]

    def ground_truth_json(self) -> dict[str, Any]:
        """The ``importance_ground_truth.json`` contract read by ``kvscope analyze``."""
        return {"model": self.model, "prompt": self.prompt, "tokens": self.tokens, "token_ids": self.token_ids,
                "delta_loglik": [float(x) for x in self.delta_loglik]}


def proxies(pre: Prefill) -> dict[str, np.ndarray]:
    """Per-position importance proxies ``[position]``, higher = keep (see the module docstring)."""
    snap = pre.snapshot
    keys, values = torch.stack(snap.keys).double(), torch.stack(snap.values).double()  # [L, H, P, d]
    out = {"magnitude": (keys.abs().mean(-1) + values.abs().mean(-1)).mean(dim=(0, 1)).numpy(),
           "low key norm": (-keys.norm(dim=-1).mean(dim=(0, 1))).numpy()}
    if snap.attention_received is not None:
        out["attention received"] = snap.attention_received.double().sum(dim=(0, 1)).numpy()
        out["mean attention"] = snap.mean_attention().double().mean(dim=(0, 1)).numpy()
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); NaN when either input is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def leave_one_out(model: Any, model_name: str, prompt: str, pre: Prefill, cont_ids: torch.Tensor) -> LooResult:
    """Evict each prompt token in turn from every layer and kv_head and record the loglik change."""
    base = measure(model, pre, cont_ids, Plan("baseline")).loglik
    n = pre.n_positions
    snap = pre.snapshot
    delta = np.zeros(n)
    for p in range(n):
        keep = torch.ones(snap.n_layers, snap.keys[0].shape[0], n, dtype=torch.bool)
        keep[:, :, p] = False
        delta[p] = measure(model, pre, cont_ids, Plan(f"-{p}", keep)).loglik - base
    prox = proxies(pre)
    rho = {name: spearman(v, -delta) for name, v in prox.items()}
    return LooResult(model_name, prompt, list(snap.tokens), [int(i) for i in snap.token_ids], delta, base, prox, rho)
