"""kvscope.caching on the tiny random GQA Llama: attention by hand, cached decoding, prefix reuse, FLOPs."""

from __future__ import annotations

import pytest
import torch

from kvscope.attention import causal_attention
from kvscope.caching import FlopModel, decode_step, greedy, hooked_forward, prefix_reuse, span_flops
from kvscope.compat import forward, output_cache
from kvscope.hfcache import cache_layer_kv

TEXT = "The KV cache keeps every past key and value."


def ids_of(tok, text):
    return tok(text, return_tensors="pt").input_ids


@pytest.mark.parametrize("layer", [0, 1])
def test_attention_by_hand_matches_o_proj_input(tiny, layer):
    model, tok, info = tiny
    proj, out = hooked_forward(model, info, ids_of(tok, TEXT), layer, use_cache=True)
    assert proj.q_pre.shape == (4, 44, 16) and proj.k_pre.shape == proj.v.shape == (2, 44, 16)
    o, _ = causal_attention(proj.q_post, proj.k_post, proj.v, proj.scaling)
    assert (o - proj.o_in).abs().max() < 1e-4
    keys, values = cache_layer_kv(output_cache(out), layer)
    assert torch.allclose(proj.k_post, keys[0], atol=1e-6) and torch.equal(proj.v, values[0])
    assert not torch.allclose(proj.k_pre, proj.k_post, atol=1e-3)  # RoPE did move the keys


def test_wrong_physics_does_not_match(tiny):
    """The checks can fail: pre-RoPE keys, or a wrong q_head -> kv_head map, miss the model's output."""
    model, tok, info = tiny
    proj, _ = hooked_forward(model, info, ids_of(tok, TEXT), 1, use_cache=False)
    no_rope, _ = causal_attention(proj.q_pre, proj.k_pre, proj.v, proj.scaling)
    swapped, _ = causal_attention(proj.q_post, proj.k_post.flip(0), proj.v.flip(0), proj.scaling)
    assert (no_rope - proj.o_in).abs().max() > 1e-3
    assert (swapped - proj.o_in).abs().max() > 1e-3


def test_a_real_decode_step_consumes_the_cache(tiny):
    model, tok, info = tiny
    ids = ids_of(tok, TEXT)
    d = decode_step(model, info, ids, 1, list(TEXT))
    n = ids.shape[1]
    assert d.cached_slots_before == n - 1 and d.step_query_rows == 1
    assert d.probs_cached.shape == (4, n) and d.probs_full.shape == (4, n, n)
    assert max(d.diffs.values()) < 1e-4
    assert torch.allclose(d.probs_cached.sum(-1), torch.ones(4), atol=1e-5)


def test_greedy_with_cache_equals_without_and_generate(tiny):
    model, tok, _ = tiny
    ids = ids_of(tok, TEXT)
    with_cache, without = greedy(model, ids, 12, True), greedy(model, ids, 12, False)
    assert with_cache.tokens == without.tokens
    assert with_cache.lengths == list(range(ids.shape[1] + 1, ids.shape[1] + 13))
    ref = model.generate(ids, max_new_tokens=12, do_sample=False, min_new_tokens=12, pad_token_id=258)
    assert ref[0, ids.shape[1] :].tolist() == with_cache.tokens


@pytest.mark.parametrize(
    "second,shared", [("The KV cache keeps every past query.", 30), ("A different start entirely.", 0), (TEXT, 44)]
)
def test_prefix_reuse_logits_match_a_fresh_run(tiny, second, shared):
    model, tok, info = tiny
    ids1, ids2 = ids_of(tok, TEXT), ids_of(tok, second)
    r = prefix_reuse(model, info, ids1, ids2, 0, (list(TEXT), list(second)), repeats=1)
    assert r.shared == min(shared, ids1.shape[1]) and r.reused == min(shared, ids2.shape[1] - 1)
    assert r.logits_max_abs_diff < 1e-4 and r.logits_match
    assert r.flops["saved"]["total"] == (0 if r.reused == 0 else r.flops["fresh"]["total"] - r.flops["reuse"]["total"])
    assert r.attention.shape == (ids2.shape[1],) * 2


def test_corrupted_prefix_is_caught(tiny):
    """Reusing a cache at the wrong positions changes the logits (the parity check can fail)."""
    from transformers import DynamicCache

    from kvscope.caching.prefix import continue_from, prefix_cache

    model, tok, info = tiny
    ids = ids_of(tok, TEXT)
    cache = DynamicCache(config=model.config)
    continue_from(model, cache, ids, 0)
    fresh = continue_from(model, DynamicCache(config=model.config), ids, 0).logits[0, 20:]
    good = continue_from(model, prefix_cache(model, cache, info.layers, 20), ids, 20).logits[0]
    shifted = prefix_cache(model, cache, info.layers, 20)
    with torch.inference_mode():
        bad = forward(
            model,
            shifted,
            input_ids=ids[:, 20:],
            use_cache=True,
            position_ids=torch.arange(25, 25 + ids.shape[1] - 20)[None],
        ).logits[0]
    assert (good - fresh).abs().max() < 1e-4 and (bad - fresh).abs().max() > 1e-3


def test_linear_flops_match_torch_flop_counter(tiny):
    """Projections + MLP + lm_head counted in closed form equal torch's count of the model's own matmuls,
    once the attention products (which eager computes as a full rectangle) are taken out."""
    from torch.utils.flop_counter import FlopCounterMode

    model, tok, info = tiny
    ids = ids_of(tok, "flop count")
    n = ids.shape[1]
    fm = FlopModel.from_model(model, info)
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
    finally:
        model.set_attn_implementation("sdpa")
    rectangle = fm.layers * fm.attention_per_key * n * n  # eager's Q·Kᵀ and P·V over all n x n pairs
    # Some transformers releases build the RoPE angles with a matmul (inv_freq x positions); not a layer's work.
    rope = sum(sum(ops.values()) for name, ops in counter.get_flop_counts().items() if name.endswith("rotary_emb"))
    closed = span_flops(fm, 0, n)
    assert counter.get_total_flops() - rectangle - rope == closed["total"] - closed["attention"]


def test_explain_caching_report_repr_html_and_save(tiny, tmp_path):
    import kvscope as ks
    from kvscope.caching.caching_figures import CACHING_FIGURES

    model, tok, info = tiny
    r = ks.explain_caching(model, tok, "ab cd", "ab ce", layer=1, new_tokens=3, repeats=1)
    text = repr(r)
    assert text.startswith("CachingReport(model='tiny', layer=1, tokens=") and len(text) < 300
    assert "prefix_reused=4/5" in text and "tensor" not in text
    page = r._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == len(CACHING_FIGURES) and "speedup with cache" in page
    files = r.save(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([*CACHING_FIGURES, "caching.json", ".kvscope-out.json"])  # the marker: kvscope wrote it
    assert [p.name for p in files] == [*CACHING_FIGURES, "caching.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_explain_caching_refuses_bad_arguments(tiny):
    import kvscope as ks
    from kvscope.errors import UsageError

    model, tok, _ = tiny
    for kwargs, fragment in [
        ({"layer": 2}, "out of range"),
        ({"second_prompt": " "}, "second_prompt is empty"),
        ({"new_tokens": 0}, "new_tokens must be between 1"),
    ]:
        with pytest.raises(UsageError, match=fragment) as err:
            ks.explain_caching(model, tok, "ab cd", **kwargs)
        assert "--" not in str(err.value)  # the library names its parameters, the CLI spells them as flags
