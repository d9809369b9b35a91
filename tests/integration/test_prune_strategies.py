"""Each strategy keeps exactly ceil((1-R)·n) tokens per kv_head, and exactly the ones its paper says,
checked against brute-force references built from eager attention probabilities."""

import math

import pytest
import torch

from kvscope.capturing import cache_nbytes
from kvscope.errors import UsageError
from kvscope.prune.evict import build_cache, n_keep, prefill
from kvscope.prune.strategies import STRATEGIES, get_strategy

PROMPT = "Alice put the red key in the blue box. Bob took the key and hid it under the stone by the well."


@pytest.fixture(scope="module")
def setup(tiny):
    model, tok, info = tiny
    ids = tok(PROMPT, return_tensors="pt").input_ids
    pre = prefill(model, tok, info, ids)
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = model(input_ids=ids, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    probs = [a[0].double() for a in out.attentions]  # [layer] [q_head, query, key]
    return model, info, pre, probs


def _brute_keep(order_key, n, k):
    """Positions 0..n-1 sorted by order_key (descending), first k."""
    return set(sorted(range(n), key=order_key, reverse=True)[:k])


def _kept(keep, layer, head):
    return set(keep[layer, head].nonzero()[:, 0].tolist())


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_keeps_exactly_ceil(setup, name, ratio):
    _, info, pre, _ = setup
    n = pre.n_positions
    keep = get_strategy(name).keep(pre, ratio)
    assert keep.shape == (info.layers, info.kv_heads, n)
    assert (keep.sum(-1) == math.ceil((1 - ratio) * n - 1e-9)).all()


def test_n_keep_is_float_safe():
    assert n_keep(10, 0.7) == 3 and n_keep(10, 0.9) == 1 and n_keep(8, 0.75) == 2 and n_keep(7, 0.5) == 4


def test_knorm_and_magnitude_match_brute_force(setup):
    _, info, pre, _ = setup
    n, k = pre.n_positions, n_keep(pre.n_positions, 0.5)
    kn, mag = get_strategy("knorm").keep(pre, 0.5), get_strategy("magnitude").keep(pre, 0.5)
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            key, val = pre.snapshot.keys[layer][h], pre.snapshot.values[layer][h]
            norms = [math.sqrt(sum(float(x) ** 2 for x in key[p])) for p in range(n)]
            assert _kept(kn, layer, h) == _brute_keep(lambda p: -norms[p], n, k)
            m = [float(key[p].abs().mean() + val[p].abs().mean()) for p in range(n)]
            assert _kept(mag, layer, h) == _brute_keep(lambda p: m[p], n, k)


def test_streaming_is_sinks_plus_window(setup):
    _, info, pre, _ = setup
    n = pre.n_positions
    for ratio in (0.5, 0.9):
        k = n_keep(n, ratio)
        keep = get_strategy("streaming").keep(pre, ratio)
        expected = set(range(4)) | set(range(n - (k - 4), n))
        assert all(_kept(keep, layer, h) == expected for layer in range(info.layers) for h in range(info.kv_heads))


def test_h2o_matches_eager_attention(setup):
    _, info, pre, probs = setup
    n, k = pre.n_positions, n_keep(pre.n_positions, 0.75)
    g = info.group_size
    keep = get_strategy("h2o").keep(pre, 0.75)
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            received = probs[layer][h * g:(h + 1) * g].sum(dim=(0, 1))  # over group q_heads and queries
            recent = set(range(n - k // 2, n))
            rest = _brute_keep(lambda p: float(received[p]) if p not in recent else -1, n, k - len(recent))
            assert _kept(keep, layer, h) == recent | rest


def test_snapkv_matches_eager_attention(setup):
    _, info, pre, probs = setup
    n, k = pre.n_positions, n_keep(pre.n_positions, 0.5)
    g, w = info.group_size, min(32, n)
    keep = get_strategy("snapkv").keep(pre, 0.5)
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            votes = probs[layer][h * g:(h + 1) * g, n - w:].sum(dim=(0, 1))
            pooled = [float(votes[max(0, p - 2):p + 3].mean()) for p in range(n)]  # kernel 5, no padding
            window = set(range(n - min(w, k), n))
            rest = _brute_keep(lambda p: pooled[p] if p not in window else -1, n, k - len(window))
            assert _kept(keep, layer, h) == window | rest


def test_random_is_seeded_and_strategies_differ(setup):
    _, _, pre, _ = setup
    a, b = get_strategy("random").keep(pre, 0.5), get_strategy("random").keep(pre, 0.5)
    assert torch.equal(a, b)
    plans = {name: get_strategy(name).keep(pre, 0.5) for name in STRATEGIES}
    assert len({tuple(p.flatten().tolist()) for p in plans.values()}) == len(plans)


def test_kept_bytes_equal_the_cache_tensors(setup):
    model, info, pre, _ = setup
    for name in STRATEGIES:
        pc = build_cache(model.config, pre, get_strategy(name).keep(pre, 0.75))
        assert pc.masks == {} and pc.kv_bytes == cache_nbytes(pc.cache) == pc.held_bytes
        assert pc.kv_bytes == 2 * info.layers * info.kv_heads * n_keep(pre.n_positions, 0.75) * info.head_dim * 4


def test_unknown_strategy_lists_valid_ones():
    with pytest.raises(UsageError, match="knorm, streaming, h2o, snapkv, magnitude, random"):
        get_strategy("tova")
