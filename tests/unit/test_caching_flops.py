"""FLOP counting of kvscope.caching.flops: closed forms against brute-force enumeration and hand-worked values."""

from __future__ import annotations

import itertools

import pytest

from kvscope.caching.flops import FlopModel, generation_flops, prefix_savings, span_flops, triangle

SMALL = FlopModel(layers=2, hidden=8, q_heads=4, kv_heads=2, head_dim=2, intermediate=12, vocab=10)


def brute_force(fm: FlopModel, computed: list[int], n_keys: int, logits: int = 1) -> int:
    """Count multiply-adds one by one: every computed query row, every visible key, every channel, every
    q_head, every layer; every weight of every projection for every computed token."""
    macs = 0
    for _layer in range(fm.layers):
        for p in computed:
            for key in range(n_keys):
                if key <= p:  # causal mask
                    macs += fm.q_heads * fm.head_dim * 2  # q·k over head_dim, then probs·v over head_dim
            macs += fm.hidden * fm.q_heads * fm.head_dim  # q_proj
            macs += 2 * fm.hidden * fm.kv_heads * fm.head_dim  # k_proj, v_proj
            macs += fm.q_heads * fm.head_dim * fm.hidden  # o_proj
            macs += 3 * fm.hidden * fm.intermediate  # gate, up, down
    if computed:
        macs += logits * fm.hidden * fm.vocab
    return 2 * macs


@pytest.mark.parametrize("start,end", [(s, e) for e in range(7) for s in range(e + 1)])
def test_span_flops_equals_brute_force(start, end):
    assert span_flops(SMALL, start, end)["total"] == brute_force(SMALL, list(range(start, end)), end)


@pytest.mark.parametrize("n,reused", [(n, r) for n, r in itertools.product(range(1, 7), range(6)) if r < n])
def test_prefix_savings_equals_brute_force(n, reused):
    s = prefix_savings(SMALL, n, reused)
    fresh, reuse = brute_force(SMALL, list(range(n)), n), brute_force(SMALL, list(range(reused, n)), n)
    assert s["fresh"]["total"] == fresh and s["reuse"]["total"] == reuse
    assert s["saved"]["total"] == fresh - reuse
    assert s["saved"]["lm_head"] == 0  # both runs produce the next-token logits


def test_hand_worked_prefix_of_two_in_four():
    # Attention rows 0..3 see 1, 2, 3, 4 keys: 10 (query, key) pairs; reusing rows 0..1 saves 1 + 2 = 3.
    s = prefix_savings(SMALL, 4, 2)
    assert s["share_attention"] == pytest.approx(3 / 10)
    assert s["share_tokens"] == 0.5
    per_pair = 4 * SMALL.q_heads * SMALL.head_dim * SMALL.layers
    assert s["saved"]["attention"] == 3 * per_pair == 3 * 4 * 4 * 2 * 2
    # not the naive prefix/total ratio (the original's 61.4 %), nor (prefix/total)^2 exactly
    assert s["share_attention"] not in (0.5, 0.25)


def test_triangle():
    assert [triangle(n) for n in range(6)] == [0, 1, 3, 6, 10, 15]


def test_generation_flops_with_and_without_cache_brute_force():
    prompt, steps = 3, 4
    with_cache = generation_flops(SMALL, prompt, steps, use_cache=True)
    without = generation_flops(SMALL, prompt, steps, use_cache=False)
    total_w, total_wo = 0, 0
    for t in range(1, steps + 1):
        end = prompt + t - 1
        total_w += brute_force(SMALL, list(range(end)) if t == 1 else [end - 1], end)
        total_wo += brute_force(SMALL, list(range(end)), end)
        assert with_cache[t - 1] == total_w and without[t - 1] == total_wo
    assert with_cache[0] == without[0]  # the first step is the same prefill


def test_without_cache_work_grows_quadratically():
    big = FlopModel(layers=1, hidden=576, q_heads=9, kv_heads=3, head_dim=64, intermediate=1536, vocab=100)  # SmolLM2
    w = generation_flops(big, 1, 400, use_cache=True)
    wo = generation_flops(big, 1, 400, use_cache=False)
    # doubling the length: ~2x the work with the cache, more than ~4x without (linear part n^2, attention n^3)
    assert 1.9 < w[399] / w[199] < 2.3
    assert 3.9 < wo[399] / wo[199] < 8


def test_bad_span_is_refused():
    with pytest.raises(ValueError):
        span_flops(SMALL, 3, 2)
