"""Synthetic ``KVSnapshot`` factory for the analysis tests (no model), plus its own sanity checks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import causal_attention, random_snapshot


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
