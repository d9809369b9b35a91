"""RoPE and attention by hand (kvscope.caching.projections), on synthetic tensors with golden values."""

from __future__ import annotations

import math

import pytest
import torch

from kvscope.caching.prefix import common_prefix
from kvscope.caching.projections import apply_rope, manual_attention, rotate_half


def test_rotate_half_golden():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]


def test_apply_rope_is_a_rotation_by_the_angle():
    # head_dim 2: the channel pair (0, 1) turns by angle a: (x, y) -> (x cos a - y sin a, x sin a + y cos a)
    a = 0.7
    cos = torch.full((1, 2), math.cos(a))
    sin = torch.full((1, 2), math.sin(a))
    out = apply_rope(torch.tensor([[[1.0, 0.0]]]), cos, sin)
    assert out[0, 0].tolist() == pytest.approx([math.cos(a), math.sin(a)])
    out = apply_rope(torch.tensor([[[0.0, 1.0]]]), cos, sin)
    assert out[0, 0].tolist() == pytest.approx([-math.sin(a), math.cos(a)])


def test_apply_rope_keeps_norms():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8)
    ang = torch.rand(5, 4) * 6
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_manual_attention_matches_sdpa_with_gqa():
    torch.manual_seed(1)
    q, k, v = torch.randn(6, 7, 4), torch.randn(2, 7, 4), torch.randn(2, 7, 4)
    out, probs = manual_attention(q, k, v, 0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[None], k.repeat_interleave(3, 0)[None], v.repeat_interleave(3, 0)[None], is_causal=True, scale=0.5)[0]
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(6, 7), atol=1e-6)
    assert probs[:, 0, 1:].abs().max() == 0  # the first query sees only itself


def test_gqa_mapping_golden():
    # kv_head j's values are all j, so q_head h's output is exactly h // group.
    q, k = torch.randn(6, 3, 4), torch.randn(3, 3, 4)
    v = torch.arange(3.0)[:, None, None].expand(3, 3, 4)
    out, _ = manual_attention(q, k, v, 1.0)
    assert out[:, :, 0].tolist() == [[h // 2] * 3 for h in range(6)]


def test_one_query_row_at_the_end_sees_every_key():
    torch.manual_seed(2)
    q, k, v = torch.randn(2, 5, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    full_out, full_p = manual_attention(q, k, v, 0.5)
    row_out, row_p = manual_attention(q[:, -1:], k, v, 0.5)
    assert torch.allclose(row_p[:, 0], full_p[:, -1], atol=1e-7)
    assert torch.allclose(row_out[:, 0], full_out[:, -1], atol=1e-7)


def test_uneven_heads_are_refused():
    from kvscope.errors import UsageError

    with pytest.raises(UsageError):
        manual_attention(torch.randn(5, 2, 4), torch.randn(2, 2, 4), torch.randn(2, 2, 4), 1.0)


@pytest.mark.parametrize("a,b,n", [([1, 2, 3], [1, 2, 4], 2), ([1], [2], 0), ([], [1], 0), ([5, 6], [5, 6, 7], 2)])
def test_common_prefix(a, b, n):
    assert common_prefix(a, b) == n
