"""Capture on the tiny random-weight GQA Llama: shapes, parity, cache semantics, attention received."""

from __future__ import annotations

import pytest
import torch

from kvscope.attention import _chunked_softmax, chunked_attention
from kvscope.capture.capturing import capture, encode_prompt, run_capture
from kvscope.errors import UsageError
from kvscope.hfcache import cache_to_lists

TEXT = "The quick brown fox jumps over the lazy dog, 42 times."


@pytest.fixture(scope="module")
def ids(tiny):
    return tiny.tokenizer(TEXT, return_tensors="pt").input_ids


def test_kv_shapes_follow_the_gqa_config(tiny, ids):
    snap = capture(tiny.model, tiny.tokenizer, TEXT, info=tiny.info, pre_rope=True, queries=True, attention=True)
    cfg = tiny.model.config
    n = ids.shape[1]
    assert snap.n_layers == cfg.num_hidden_layers == 2
    for layer in range(snap.n_layers):
        assert snap.keys[layer].shape == (cfg.num_key_value_heads, n, cfg.head_dim) == (2, n, 16)
        assert snap.values[layer].shape == (2, n, 16)
        assert snap.pre_rope_keys[layer].shape == (2, n, 16)
        assert snap.queries[layer].shape == (cfg.num_attention_heads, n, 16)
        assert snap.keys[layer].dtype == torch.float32
    assert snap.attention_received.shape == (2, 2, n) and snap.attention_counts.shape == (2, n)
    assert snap.tokens[:3] == ["T", "h", "e"] and snap.positions.tolist() == list(range(n))


def test_logits_are_unchanged_by_capturing(tiny, ids):
    with torch.inference_mode():
        plain = tiny.model(ids).logits[0]
    for flags in ({}, {"attention": True, "pre_rope": True, "queries": True}):
        got = run_capture(tiny.model, ids, tiny.tokenizer, info=tiny.info, keep_logits=True, **flags).logits
        torch.testing.assert_close(got, plain, atol=1e-5, rtol=1e-5)
    assert tiny.model.config._attn_implementation == "sdpa"  # restored after recording


def test_captured_cache_continues_like_a_full_pass(tiny, ids):
    """prefill(prefix) + forward(rest, cache rebuilt from the snapshot) == one full pass."""
    from kvscope.hfcache import cache_from_tensors

    split = 20
    snap = run_capture(tiny.model, ids[:, :split], tiny.tokenizer, info=tiny.info).snapshot
    cache = cache_from_tensors(tiny.model.config, [k[None] for k in snap.keys], [v[None] for v in snap.values])
    with torch.inference_mode():
        rest = tiny.model(ids[:, split:], past_key_values=cache, use_cache=True).logits[0]
        full = tiny.model(ids).logits[0, split:]
    torch.testing.assert_close(rest, full, atol=1e-5, rtol=1e-5)


def test_attention_received_matches_eager_attention(tiny, ids):
    n = ids.shape[1]
    group = tiny.info.group_size
    snap = run_capture(tiny.model, ids, tiny.tokenizer, info=tiny.info, attention=True, query_chunk=7).snapshot
    tiny.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            maps = torch.stack(tiny.model(ids, output_attentions=True).attentions)[:, 0]  # [L, q_head, q, k]
    finally:
        tiny.model.set_attn_implementation("sdpa")
    expected = maps.sum(dim=2).view(2, tiny.info.kv_heads, group, n).sum(dim=2)
    torch.testing.assert_close(snap.attention_received, expected, atol=1e-5, rtol=1e-5)
    # Every query row sums to 1, so each kv_head receives (queries x q_heads in its group) in total.
    torch.testing.assert_close(snap.attention_received.sum(-1), torch.full((2, 2), float(n * group)))
    # Key p is visible to the n - p later-or-equal queries of each of the group's q_heads.
    assert snap.attention_counts[0].tolist() == [(n - p) * group for p in range(n)]


def test_pre_rope_keys_rotate_into_the_cached_keys(tiny, ids):
    snap = capture(tiny.model, tiny.tokenizer, TEXT, info=tiny.info, pre_rope=True)
    pos = snap.positions[None]
    cos, sin = tiny.model.model.rotary_emb(snap.pre_rope_keys[0][None], pos)
    from transformers.models.llama.modeling_llama import rotate_half

    k = snap.pre_rope_keys[1]
    rotated = k * cos[0] + rotate_half(k) * sin[0]
    torch.testing.assert_close(rotated, snap.keys[1], atol=1e-5, rtol=1e-5)
    # RoPE is a rotation: per-token key L2 norms are unchanged by it.
    torch.testing.assert_close(k.norm(dim=-1), snap.keys[1].norm(dim=-1), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("q,k,chunk", [(5, 5, 2), (3, 8, 1), (6, 6, 100)])
def test_chunked_attention_equals_direct_softmax(q, k, chunk):
    """Queries sitting at the end of a longer cache (q < k) see keys up to their own slot."""
    g = torch.Generator().manual_seed(1)
    query, key, value = (
        torch.randn(1, 4, q, 8, generator=g),
        torch.randn(1, 2, k, 8, generator=g),
        torch.randn(1, 2, k, 8, generator=g),
    )
    kk, vv = key.repeat_interleave(2, dim=1), value.repeat_interleave(2, dim=1)
    visible = torch.arange(k)[None, :] <= torch.arange(k - q, k)[:, None]
    scores = (query @ kk.transpose(-1, -2) * 8**-0.5).masked_fill(~visible, float("-inf"))
    probs = scores.softmax(-1)
    # the dispatcher (fused flash path when q == k) and the general chunked softmax, each against the reference
    for out, received, counts in (
        chunked_attention(query, key, value, None, 8**-0.5, chunk=chunk),
        _chunked_softmax(query, key, value, None, 8**-0.5, None, chunk),
    ):
        torch.testing.assert_close(out, probs @ vv, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(received, probs[0].view(2, 2, q, k).sum(dim=(1, 2)), atol=1e-6, rtol=1e-5)
        assert counts.tolist() == (visible.sum(0) * 2).float().tolist()


def test_snapshot_never_aliases_the_live_cache(tiny, ids):
    from transformers import DynamicCache

    cache = DynamicCache(config=tiny.model.config)
    with torch.inference_mode():
        tiny.model(ids, past_key_values=cache, use_cache=True)
    keys, values = cache_to_lists(cache, 2)
    before = keys[0].clone()
    with torch.inference_mode():
        cache.layers[0].keys.mul_(0)
    assert torch.equal(keys[0], before) and keys[0].abs().sum() > 0


def test_prompt_validation(tiny):
    with pytest.raises(UsageError, match="empty"):
        encode_prompt(tiny.tokenizer, "   ", 100)
    long_text = "x" * 50
    with pytest.raises(UsageError, match="at most 10"):
        encode_prompt(tiny.tokenizer, long_text, 10)
    assert encode_prompt(tiny.tokenizer, long_text, 10, truncate=True).shape == (1, 10)
