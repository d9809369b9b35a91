"""Leave-one-out ground truth for token importance.

For each prompt position ``p`` the token is evicted from every layer and kv_head (all other tokens
kept) and the continuation is scored again: ``delta_loglik[p]`` = summed continuation log-likelihood
(nats) with ``p`` evicted minus the baseline's. Negative = the continuation needed that token.

The proxies that cheap eviction policies use are then ranked against this ground truth with
Spearman's rank correlation, each oriented so that higher means "keep":

- ``magnitude``: mean over layers and kv_heads of (||k||2 + ||v||2) / 2 (``kvscope.scores.magnitude``);
- ``mean_abs``: the same mean of mean |k| + mean |v| (the seed's heuristic, ``kvscope.scores.mean_abs``);
- ``low key norm``: minus the mean key L2 norm (KNorm, Devoto et al., EMNLP 2024);
- ``attention received``: summed attention received (H2O, Zhang et al., NeurIPS 2023);
- ``mean attention``: attention received per query that could see the token (removes the causal
  bias towards early tokens, which more queries see).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kvscope.kit.results import ResultMixin
from kvscope.progress import track
from kvscope.prune.evict import Prefill
from kvscope.prune.lab import Plan, measure
from kvscope.scores import magnitude, mean_abs
from kvscope.stats import spearman


@dataclass(repr=False)
class LooResult(ResultMixin):
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
        return {
            "model": self.model,
            "prompt": self.prompt,
            "tokens": self.tokens,
            "token_ids": self.token_ids,
            "delta_loglik": [float(x) for x in self.delta_loglik],
        }

    def to_dict(self) -> dict[str, Any]:
        proxies = {name: [float(x) for x in values] for name, values in self.proxies.items()}
        return {
            **self.ground_truth_json(),
            "baseline_loglik": self.baseline_loglik,
            "proxies": proxies,
            "spearman": dict(self.spearman),
        }

    command = "prune --leave-one-out"

    def summary(self) -> list[tuple[str, Any]]:
        rho = ", ".join(f"{name} {value:+.2f}" for name, value in self.spearman.items())
        return [("model", self.model), ("tokens", len(self.tokens)), ("spearman", rho)]

    def figures(self) -> dict[str, Any]:
        from kvscope.prune.prune_figures import importance_ground_truth

        return {"importance_ground_truth": importance_ground_truth(self)}

    def write(self, folder: Path) -> list[str]:
        """``importance_ground_truth.json`` (the contract ``kvscope analyze`` reads) and ``.png``."""
        from kvscope.fileio import write_json
        from kvscope.kit.figures import save_figures

        write_json(folder / "importance_ground_truth.json", self.ground_truth_json())
        return ["importance_ground_truth.json", *save_figures(self.figures(), folder)]


def proxies(pre: Prefill) -> dict[str, np.ndarray]:
    """Per-position importance proxies ``[position]``, higher = keep (see the module docstring)."""
    snap = pre.snapshot
    keys, values = torch.stack(snap.keys).double(), torch.stack(snap.values).double()  # [L, H, P, d]
    out = {
        "magnitude": magnitude(keys, values).mean(dim=(0, 1)).numpy(),
        "mean_abs": mean_abs(keys, values).mean(dim=(0, 1)).numpy(),
        "low key norm": (-keys.norm(dim=-1).mean(dim=(0, 1))).numpy(),
    }
    if snap.attention_received is not None:
        out["attention received"] = snap.attention_received.double().sum(dim=(0, 1)).numpy()
        out["mean attention"] = snap.mean_attention().double().mean(dim=(0, 1)).numpy()
    return out


def leave_one_out(
    model: Any, model_name: str, prompt: str, pre: Prefill, cont_ids: torch.Tensor, quiet: bool = False
) -> LooResult:
    """Evict each prompt token in turn from every layer and kv_head and record the loglik change
    (progress on stderr in a terminal unless ``quiet``)."""
    base = measure(model, pre, cont_ids, Plan("baseline")).loglik
    n = pre.n_positions
    snap = pre.snapshot
    delta = np.zeros(n)
    for p in track(range(n), "leave-one-out: prompt tokens", quiet=quiet):
        keep = torch.ones(snap.n_layers, snap.keys[0].shape[0], n, dtype=torch.bool)
        keep[:, :, p] = False
        delta[p] = measure(model, pre, cont_ids, Plan(f"-{p}", keep)).loglik - base
    prox = proxies(pre)
    rho = {name: spearman(v, -delta) for name, v in prox.items()}
    return LooResult(model_name, prompt, list(snap.tokens), [int(i) for i in snap.token_ids], delta, base, prox, rho)
