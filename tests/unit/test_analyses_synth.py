"""Synthetic ``KVSnapshot`` factory for the analysis tests (no model), plus its own sanity checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvscope.models import ModelInfo
from kvscope.snapshot import KVSnapshot


def make_info(layers: int, kv_heads: int, head_dim: int, q_heads: int | None = None) -> ModelInfo:
    q = q_heads or kv_heads * 2
    return ModelInfo(
        name="synthetic",
        architecture="LlamaForCausalLM",
        layers=layers,
        q_heads=q,
        kv_heads=kv_heads,
        head_dim=head_dim,
        hidden_size=q * head_dim,
        vocab_size=256,
        rope_theta=10000.0,
        max_positions=8192,
        dtype="float32",
        parameters=0,
        kv_bytes_per_token=2 * layers * kv_heads * head_dim * 4,
    )


def causal_attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``[q_head, P, P]`` causal softmax(q k^T / sqrt(d)); q_head h reads kv_head h // group."""
    group = q.shape[0] // k.shape[0]
    kk = k.repeat_interleave(group, dim=0)
    scores = q @ kk.transpose(-1, -2) / q.shape[-1] ** 0.5
    mask = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def make_snapshot(
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    tokens: list[str] | None = None,
    attention: bool = True,
    queries: bool = True,
    q_heads: int | None = None,
    seed: int = 0,
) -> KVSnapshot:
    """A snapshot from given K/V ``[kv_head, P, head_dim]``; attention computed exactly from random
    queries (when asked), so attention_received is consistent with the queries."""
    kv_heads, n, d = keys[0].shape
    info = make_info(len(keys), kv_heads, d, q_heads)
    tokens = tokens or [f"t{i}" for i in range(n)]
    gen = torch.Generator().manual_seed(seed)
    qs = [torch.randn(info.q_heads, n, d, generator=gen) for _ in keys]
    received = counts = None
    if attention:
        group = info.group_size
        rec = [causal_attention(q, k).sum(1).reshape(kv_heads, group, n).sum(1) for q, k in zip(qs, keys)]
        received = torch.stack(rec)
        counts = (group * (n - torch.arange(n))).float().expand(len(keys), n).clone()
    return KVSnapshot(
        keys=[k.float() for k in keys],
        values=[v.float() for v in values],
        token_ids=torch.arange(n),
        tokens=tokens,
        special=torch.zeros(n, dtype=torch.bool),
        positions=torch.arange(n),
        info=info,
        text="".join(tokens),
        queries=qs if queries else None,
        attention_received=received,
        attention_counts=counts,
    )


def random_snapshot(layers: int = 3, kv_heads: int = 2, n: int = 12, d: int = 8, seed: int = 0, **kw) -> KVSnapshot:
    gen = torch.Generator().manual_seed(seed)
    keys = [torch.randn(kv_heads, n, d, generator=gen) for _ in range(layers)]
    values = [torch.randn(kv_heads, n, d, generator=gen) for _ in range(layers)]
    return make_snapshot(keys, values, seed=seed, **kw)


def test_synthetic_attention_rows_sum_to_group_times_queries():
    snap = random_snapshot(n=7)
    total = snap.attention_received.sum(-1)
    assert np.allclose(total.numpy(), snap.info.group_size * 7, atol=1e-4)


def test_mean_attention_is_each_keys_average_over_the_queries_that_see_it():
    snap = random_snapshot(n=7)
    group, mean = snap.info.group_size, snap.mean_attention()
    for layer, (q, k) in enumerate(zip(snap.queries, snap.keys)):
        probs = causal_attention(q, k)  # [q_head, query, key]
        for kv_head in range(k.shape[0]):
            for key in range(7):
                heads = range(kv_head * group, (kv_head + 1) * group)
                seen = [float(probs[h, i, key]) for h in heads for i in range(key, 7)]  # queries at or after key
                assert float(mean[layer, kv_head, key]) == pytest.approx(sum(seen) / len(seen), abs=1e-5)
