"""Pruning potential: hand-worked values on planted snapshots."""

from __future__ import annotations

import numpy as np
import torch

from kvscope.analyze.pruning_potential import pruning_potential
from tests.helpers import make_snapshot, random_snapshot


def test_uniform_fallback_is_mean_value_norm():
    # values with norms 1 (head 0) and 2 (head 1) everywhere, layer 1 twice as large
    v0 = torch.zeros(2, 4, 4)
    v0[0, :, 0] = 1.0
    v0[1, :, 1] = 2.0
    snap = make_snapshot([torch.randn(2, 4, 4)] * 2, [v0, 2 * v0], attention=False)
    pp = pruning_potential(snap)
    assert not pp.uses_attention and "uniform" in pp.definition
    np.testing.assert_allclose(pp.contribution, [[1, 2], [2, 4]])
    np.testing.assert_allclose(pp.head, [[0.75, 0.5], [0.5, 0.0]])
    np.testing.assert_allclose(pp.layer, [0.5, 0.0])  # layer means 1.5 and 3


def test_attention_weighted_head_that_reads_a_zero_value_sink_has_potential_one():
    n, d = 5, 4
    keys = torch.zeros(1, n, d)
    keys[0, 0, 0] = 50.0  # every query attends almost only to position 0
    values = torch.ones(1, n, d)
    values[0, 0] = 0.0  # ... whose value is zero
    other_v = torch.ones(1, n, d)  # second layer: uniform-ish attention to unit-norm... values
    snap = make_snapshot([keys, torch.zeros(1, n, d)], [values, other_v], q_heads=1)
    snap.queries[0][:] = 0.0
    snap.queries[0][:, :, 0] = 1.0  # q.k0 = 50 -> softmax puts ~all mass on position 0
    from tests.helpers import causal_attention

    snap.attention_received[0] = causal_attention(snap.queries[0], keys).sum(1)
    pp = pruning_potential(snap)
    assert pp.uses_attention
    assert pp.contribution[0, 0] < 1e-6 * pp.contribution[1, 0]
    np.testing.assert_allclose(pp.head[:, 0], [1.0, 0.0], atol=1e-6)
    assert pp.contribution[1, 0] == np.float64(2.0)  # ||(1,1,1,1)|| = 2, any weights


def test_shapes_and_range():
    snap = random_snapshot(layers=4, kv_heads=3)
    pp = pruning_potential(snap)
    assert pp.layer.shape == (4,) and pp.head.shape == (4, 3)
    assert pp.head.min() >= 0 and pp.head.max() <= 1 and np.isclose(pp.head.min(), 0)
