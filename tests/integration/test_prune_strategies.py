"""Each strategy keeps its budget (ceil((1-R)·n) per kv_head, or that total shared across layers or
kv_heads), and exactly the tokens its paper says, checked against brute-force references built in
plain Python from eager attention probabilities (float64) or the snapshot's tensors."""

import math

import pytest
import torch

from kvscope.errors import UsageError
from kvscope.hfcache import cache_nbytes
from kvscope.prune.evict import build_cache, n_keep, prefill
from kvscope.prune.strategies import STRATEGIES, make_strategy
from kvscope.prune.strategies.literature import pyramid_weights

SHARED = {"pyramidkv": "layers", "adakv": "kv_heads"}  # how a strategy shares its total budget

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
@pytest.mark.parametrize("rounding", ["ceil", "floor"])
def test_keeps_exactly_the_budget(setup, name, ratio, rounding):
    _, info, pre, _ = setup
    n = pre.n_positions
    keep = make_strategy(name, rounding=rounding).keep(pre, ratio)
    k = (math.ceil if rounding == "ceil" else math.floor)(round((1 - ratio) * n, 9))
    assert keep.shape == (info.layers, info.kv_heads, n)
    assert int(keep.sum()) == info.layers * info.kv_heads * k  # the same total for every strategy
    if SHARED.get(name) == "kv_heads":
        assert (keep.sum(dim=(1, 2)) == info.kv_heads * k).all()  # per layer
    elif SHARED.get(name) == "layers":
        assert (keep.sum(-1) == keep.sum(-1)[:, :1]).all()  # every kv_head of a layer alike
    else:
        assert (keep.sum(-1) == k).all()


def _pooled_votes(probs, layer, h, g, w, n):
    """SnapKV by hand: attention of the last w queries summed over the group, mean over a 5-wide window."""
    votes = [
        sum(float(probs[layer][q, i, p]) for q in range(h * g, (h + 1) * g) for i in range(n - w, n)) for p in range(n)
    ]
    return [sum(votes[max(0, p - 2) : p + 3]) / len(votes[max(0, p - 2) : p + 3]) for p in range(n)]


def _snap_by_hand(pooled, n, k, w, sinks=4):
    """The kept set of one (layer, kv_head) under SnapKV's rules at budget k."""
    if k < w:
        s = min(sinks, k)
        return set(range(s)) | set(range(n - (k - s), n))
    window = set(range(n - w, n))
    return window | _brute_keep(lambda p: pooled[p] if p not in window else -1, n, k - w)


def test_n_keep_is_float_safe():
    assert n_keep(10, 0.7) == 3 and n_keep(10, 0.9) == 1 and n_keep(8, 0.75) == 2 and n_keep(7, 0.5) == 4


def test_knorm_and_magnitude_match_brute_force(setup):
    _, info, pre, _ = setup
    n, k = pre.n_positions, n_keep(pre.n_positions, 0.5)
    kn, mag = make_strategy("knorm").keep(pre, 0.5), make_strategy("magnitude").keep(pre, 0.5)
    skipped = make_strategy("knorm", skip_layers=1).keep(pre, 0.5)
    l2 = lambda vec: math.sqrt(sum(float(x) ** 2 for x in vec))  # noqa: E731
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            key, val = pre.snapshot.keys[layer][h], pre.snapshot.values[layer][h]
            norms = [l2(key[p]) for p in range(n)]
            assert _kept(kn, layer, h) == _brute_keep(lambda p: -norms[p], n, k)
            assert _kept(skipped, layer, h) == (set(range(n)) if layer == 0 else _kept(kn, layer, h))
            m = [(l2(key[p]) + l2(val[p])) / 2 for p in range(n)]  # magnitude: mean of the two L2 norms
            assert _kept(mag, layer, h) == _brute_keep(lambda p: m[p], n, k)


def test_streaming_is_sinks_plus_window(setup):
    _, info, pre, _ = setup
    n = pre.n_positions
    for ratio in (0.5, 0.9):
        k = n_keep(n, ratio)
        keep = make_strategy("streaming").keep(pre, ratio)
        expected = set(range(4)) | set(range(n - (k - 4), n))
        assert all(_kept(keep, layer, h) == expected for layer in range(info.layers) for h in range(info.kv_heads))


def test_h2o_matches_eager_attention(setup):
    _, info, pre, probs = setup
    n, k = pre.n_positions, n_keep(pre.n_positions, 0.75)
    g = info.group_size
    keep = make_strategy("h2o").keep(pre, 0.75)
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            received = probs[layer][h * g : (h + 1) * g].sum(dim=(0, 1))  # over group q_heads and queries
            recent = set(range(n - k // 2, n))
            rest = _brute_keep(lambda p: float(received[p]) if p not in recent else -1, n, k - len(recent))
            assert _kept(keep, layer, h) == recent | rest


@pytest.mark.parametrize("window,ratio", [(32, 0.5), (16, 0.75), (32, 0.75), (64, 0.5)])
def test_snapkv_matches_eager_attention(setup, window, ratio):
    _, info, pre, probs = setup
    n, k = pre.n_positions, n_keep(pre.n_positions, ratio)
    g, w = info.group_size, min(window, n)
    keep = make_strategy("snapkv", window=window).keep(pre, ratio)
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            expected = _snap_by_hand(_pooled_votes(probs, layer, h, g, w, n), n, k, w)
            assert _kept(keep, layer, h) == expected
            if k < w:  # below its window SnapKV keeps the attention sinks (StreamingLLM), and says so
                assert set(range(4)) <= expected


def test_snapkv_below_window_warns(setup):
    _, _, pre, _ = setup
    n = pre.n_positions
    assert make_strategy("snapkv").warnings(n, 0.5) == []
    (msg,) = make_strategy("snapkv").warnings(n, 0.9)
    assert f"budget {n_keep(n, 0.9)} tokens < observation window 32" in msg and "4 sink tokens" in msg
    assert "observation window 16" not in " ".join(make_strategy("snapkv", window=16).warnings(n, 0.75))


def test_tova_matches_eager_attention(setup):
    _, info, pre, probs = setup
    n = pre.n_positions
    for ratio in (0.5, 0.9):
        k = n_keep(n, ratio)
        keep = make_strategy("tova").keep(pre, ratio)
        for layer in range(info.layers):
            last = [sum(float(probs[layer][q, n - 1, p]) for q in range(info.q_heads)) / info.q_heads for p in range(n)]
            expected = {n - 1} | _brute_keep(lambda p: last[p] if p != n - 1 else -1, n, k - 1)
            assert all(_kept(keep, layer, h) == expected for h in range(info.kv_heads))


def test_pyramidkv_budgets_and_selection(setup):
    _, info, pre, probs = setup
    n, g = pre.n_positions, info.group_size
    strategy = make_strategy("pyramidkv", beta=2.0)  # on 2 layers, beta 20 leaves the last layer ~nothing
    for ratio in (0.25, 0.5):
        k = n_keep(n, ratio)
        budgets = strategy.layer_budgets(info.layers, n, ratio)
        # by hand: 2 layers, weights 2k - k/2 and k/2 (capped at n, the excess moved to the other layer)
        top = min(n, round(1.5 * k))
        assert budgets == [top, 2 * k - top]
        keep = strategy.keep(pre, ratio)
        for layer, b in enumerate(budgets):
            for h in range(info.kv_heads):
                expected = _snap_by_hand(_pooled_votes(probs, layer, h, g, min(32, n), n), n, b, min(32, n))
                assert _kept(keep, layer, h) == expected


def test_pyramid_weights_hand_values():
    # SmolLM2's 30 layers at k = 100, beta 20: from 195 down to 5 in 29 equal steps, mean 100
    w = pyramid_weights(30, 100, 20)
    assert w[0] == pytest.approx(195) and w[-1] == pytest.approx(5) and sum(w) == pytest.approx(3000)
    assert w[1] - w[0] == pytest.approx(-190 / 29)
    assert pyramid_weights(1, 7, 20) == [7.0]


def test_adakv_matches_brute_force(setup):
    _, info, pre, probs = setup
    n, g, w = pre.n_positions, info.group_size, min(32, pre.n_positions)
    for ratio, floor in ((0.5, 0.2), (0.25, 0.9), (0.5, 0.0)):
        k = n_keep(n, ratio)
        keep = make_strategy("adakv", floor=floor).keep(pre, ratio)
        for layer in range(info.layers):
            scores = {}
            for h in range(info.kv_heads):
                pooled = _pooled_votes(probs, layer, h, g, w, n)
                for p in range(n):
                    scores[h, p] = 1e9 + p if p >= n - w else pooled[p]  # the window first
            chosen = set()
            for h in range(info.kv_heads):  # the safeguard: each head's own top floor * k
                own = sorted(range(n), key=lambda p: scores[h, p], reverse=True)[: int(floor * k)]
                chosen |= {(h, p) for p in own}
            rest = sorted((hp for hp in scores if hp not in chosen), key=lambda hp: scores[hp], reverse=True)
            chosen |= set(rest[: info.kv_heads * k - len(chosen)])
            for h in range(info.kv_heads):
                assert _kept(keep, layer, h) == {p for (hh, p) in chosen if hh == h}
        assert int(keep.sum()) == info.layers * info.kv_heads * k
    counts = make_strategy("adakv").keep(pre, 0.5).sum(-1)
    assert (counts != counts[:, :1]).any()  # the budgets really differ between kv_heads
    # a safeguard of the whole budget leaves nothing to share: plain SnapKV
    assert torch.equal(make_strategy("adakv", floor=1.0).keep(pre, 0.5), make_strategy("snapkv").keep(pre, 0.5))


def test_random_is_seeded_and_strategies_differ(setup):
    _, _, pre, _ = setup
    a, b = make_strategy("random").keep(pre, 0.5), make_strategy("random").keep(pre, 0.5)
    assert torch.equal(a, b)
    plans = {name: make_strategy(name).keep(pre, 0.5) for name in STRATEGIES}
    assert len({tuple(p.flatten().tolist()) for p in plans.values()}) == len(plans)


def test_kept_bytes_equal_the_cache_tensors(setup):
    model, info, pre, _ = setup
    for name in (n for n in STRATEGIES if n not in SHARED):
        pc = build_cache(model.config, pre, make_strategy(name).keep(pre, 0.75))
        assert pc.masks == {} and pc.kv_bytes == cache_nbytes(pc.cache) == pc.held_bytes
        assert pc.kv_bytes == 2 * info.layers * info.kv_heads * n_keep(pre.n_positions, 0.75) * info.head_dim * 4


def test_unknown_strategy_lists_valid_ones():
    with pytest.raises(UsageError, match=", ".join(STRATEGIES)):
        make_strategy("quest")
