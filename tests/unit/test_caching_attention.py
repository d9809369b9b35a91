"""RoPE (kvscope.caching.projections) and the one causal GQA helper (kvscope.attention), with golden values."""

from __future__ import annotations

import math

import pytest
import torch

from kvscope.attention import causal_attention
from kvscope.caching.prefix import common_prefix
from kvscope.caching.projections import apply_rope, rotate_half


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


def test_causal_attention_matches_sdpa_with_gqa():
    torch.manual_seed(1)
    q, k, v = torch.randn(6, 7, 4), torch.randn(2, 7, 4), torch.randn(2, 7, 4)
    out, probs = causal_attention(q, k, v, 0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[None], k.repeat_interleave(3, 0)[None], v.repeat_interleave(3, 0)[None], is_causal=True, scale=0.5
    )[0]
    assert torch.allclose(out.float(), ref, atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(6, 7, dtype=torch.float64), atol=1e-6)
    assert probs[:, 0, 1:].abs().max() == 0  # the first query sees only itself


def test_gqa_mapping_golden():
    # kv_head j's values are all j, so q_head h's output is exactly h // group.
    q, k = torch.randn(6, 3, 4), torch.randn(3, 3, 4)
    v = torch.arange(3.0)[:, None, None].expand(3, 3, 4)
    out, _ = causal_attention(q, k, v, 1.0)
    assert out[:, :, 0].flatten().tolist() == pytest.approx([h // 2 for h in range(6) for _ in range(3)], abs=1e-12)


def test_one_query_row_at_the_end_sees_every_key():
    torch.manual_seed(2)
    q, k, v = torch.randn(2, 5, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    full_out, full_p = causal_attention(q, k, v, 0.5)
    row_out, row_p = causal_attention(q[:, -1:], k, v, 0.5)
    assert torch.allclose(row_p[:, 0], full_p[:, -1], atol=1e-7)
    assert torch.allclose(row_out[:, 0], full_out[:, -1], atol=1e-7)


def test_uneven_heads_are_refused():
    with pytest.raises(ValueError, match="5 query heads cannot share 2 kv_heads"):
        causal_attention(torch.randn(5, 2, 4), torch.randn(2, 2, 4), torch.randn(2, 2, 4), 1.0)


def test_positions_after_an_eviction_and_a_query_chunk():
    """Keys at positions [0, 2, 5] (others evicted); queries at positions 2 and 5 see 2 and 3 of them."""
    q, k = torch.zeros(2, 2, 4), torch.zeros(1, 3, 4)  # equal scores: uniform over the visible keys
    v = torch.tensor([1.0, 2.0, 6.0])[None, :, None].expand(1, 3, 4)
    out, probs = causal_attention(q, k, v, 0.125, q_positions=torch.tensor([2, 5]), k_positions=torch.tensor([0, 2, 5]))
    assert probs[0].tolist() == [[0.5, 0.5, 0.0], [pytest.approx(1 / 3)] * 3]
    assert out[0, :, 0].tolist() == pytest.approx([1.5, 3.0])


def test_scaling_is_the_callers():
    """Scores are multiplied by the given scaling, not by head_dim ** -0.5."""
    q, k = torch.ones(1, 1, 4), torch.tensor([[[0.0] * 4, [1.0] * 4]])  # scores 0 and 4 for the last query
    _, probs = causal_attention(q, k, None, 0.25)
    assert probs[0, 0, 1].item() == pytest.approx(math.e / (1 + math.e))  # softmax([0, 1])
    _, probs = causal_attention(q, k, None, 1.0)
    assert probs[0, 0, 1].item() == pytest.approx(math.exp(4) / (1 + math.exp(4)))


def test_probabilities_only_and_a_query_that_sees_nothing():
    out, probs = causal_attention(
        torch.randn(2, 1, 4),
        torch.randn(1, 2, 4),
        None,
        0.5,
        q_positions=torch.tensor([0]),
        k_positions=torch.tensor([3, 4]),
    )
    assert out is None and probs.dtype == torch.float64 and probs.abs().max() == 0


def test_float32_compute_agrees_with_float64():
    torch.manual_seed(3)
    q, k, v = torch.randn(4, 6, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    ref, p_ref = causal_attention(q, k, v, 8**-0.5)
    out, p = causal_attention(q, k, v, 8**-0.5, dtype=torch.float32)
    assert out.dtype == p.dtype == torch.float32
    assert torch.allclose(out, ref.float(), atol=1e-5) and torch.allclose(p, p_ref.float(), atol=1e-6)


@pytest.mark.parametrize("a,b,n", [([1, 2, 3], [1, 2, 4], 2), ([1], [2], 0), ([], [1], 0), ([5, 6], [5, 6, 7], 2)])
def test_common_prefix(a, b, n):
    assert common_prefix(a, b) == n
