"""``ks.compress`` on eleven families (fused QKV, multi-query, GQA, soft-capping, per-layer rotary,
sliding windows): inside a user's own forward loop it gives the logits of ``kvscope prune``'s engine
for the same keep plan, and a sliding-window layer keeps only what the model's own cache holds."""

from __future__ import annotations

import pytest
import torch

import kvscope as ks
from kvscope.archs import layer_windows
from kvscope.compat import forward, output_cache
from kvscope.errors import UsageError
from kvscope.models import byte_tokenizer, describe
from kvscope.prune.evict import build_cache, continuation_logits, prefill
from kvscope.prune.strategies import make_strategy
from tests.families import FAMILIES, WINDOW, build

PROMPT = "The quick brown fox jumps over the lazy dog near the river."  # 59 tokens, window 8
CONT = " And then it ran far away."


def user_loop(model, prompt: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
    """The caller's own loop: a prefill, then the continuation in one forward over the returned cache."""
    with torch.inference_mode():
        out = forward(model, None, input_ids=prompt, use_cache=True)
        return forward(model, output_cache(out), input_ids=cont, use_cache=True).logits[0].float()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_compress_equals_the_prune_engine_on_every_family(family):
    torch.set_num_threads(1)
    tok, model = byte_tokenizer(), build(family)
    p, c = tok(PROMPT, return_tensors="pt").input_ids, tok(CONT, return_tensors="pt").input_ids
    n = p.shape[1]
    pre = prefill(model, tok, describe(model, family), p)
    pc = build_cache(model.config, pre, make_strategy("snapkv", window=4).keep(pre, 0.9))
    ref = continuation_logits(model, pc, c, n)
    with ks.compress(model, "snapkv", ratio=0.9, window=4) as comp:
        mine = user_loop(model, p, c)
    assert (mine - ref).abs().max() < 1e-4
    with torch.inference_mode():
        dense = model(torch.cat([p, c], 1)).logits[0, n:].float()
    assert (mine - dense).abs().max() > 1e-3  # and the eviction did change the continuation
    kept, keep = comp.stats.kept[0], comp.stats.keep[0]  # [layer, kv_head], [layer, kv_head, tokens]
    for layer, window in enumerate(pre.windows):
        if window:  # the model's own cache holds the last window - 1 positions: eviction inside them
            assert int(kept[layer].max()) <= window - 1 and not keep[layer, :, : keep.shape[-1] - window + 1].any()
        else:
            assert int(kept[layer].min()) == 6 + c.shape[1]  # ceil(0.1 n)


@pytest.mark.parametrize("name", ["h2o", "tova", "pyramidkv"])
@pytest.mark.parametrize("family", ["gemma2", "gemma3", "mistral"])
def test_attention_strategies_equal_the_prune_engine_on_windowed_models(family, name):
    """H2O reads the attention received, TOVA and PyramidKV the window's queries: with soft-capping and
    windows they keep what prune keeps, and the continuation gets the same logits."""
    torch.set_num_threads(1)
    tok, model = byte_tokenizer(), build(family)
    p, c = tok(PROMPT, return_tensors="pt").input_ids, tok(CONT, return_tensors="pt").input_ids
    pre = prefill(model, tok, describe(model, family), p)
    keep = make_strategy(name).keep(pre, 0.8)
    ref = continuation_logits(model, build_cache(model.config, pre, keep, mode="mask"), c, p.shape[1])
    with ks.compress(model, name, ratio=0.8) as comp:
        mine = user_loop(model, p, c)
    assert (mine - ref).abs().max() < 1e-4
    n, total = p.shape[1], p.shape[1] + c.shape[1]
    got = comp.stats.keep[0][:, :, :n]  # [layer, kv_head, prompt position]
    for layer, window in enumerate(pre.windows):  # a windowed layer holds its last window - 1 positions
        held = torch.arange(n) >= (total - window + 1 if window else 0)
        assert torch.equal(got[layer], keep[layer] & held)


@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_a_budget_while_decoding_on_windowed_models(family):
    """generate with budget 5 (below the window): no step holds more, windowed layers evict inside their
    window, and bytes count what the model's own cache would hold."""
    torch.set_num_threads(1)
    tok, model = byte_tokenizer(), build(family)
    enc = tok(PROMPT, return_tensors="pt")
    seen = []
    with ks.compress(model, "streaming", budget=5) as comp:
        handle = model.register_forward_hook(lambda *_: seen.append(int(comp.held().max())))
        try:
            model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=258)
        finally:
            handle.remove()
    assert len(seen) == 6 and max(seen) <= 5
    s, n = comp.stats, enc.input_ids.shape[1]
    layers, per_entry = s.kept.shape[1], 2 * model.config.head_dim * 4  # K and V, float32
    windows = layer_windows(model.config)
    assert WINDOW in windows
    held = sum(min(s.tokens[0], w - 1) if w else s.tokens[0] for w in windows)
    assert s.tokens[0] == n + 5 and s.bytes_before == held * s.kept.shape[2] * per_entry
    assert s.bytes_after == int(s.kept.sum()) * per_entry and layers == len(windows)


def test_kivi_is_refused_on_sliding_windows_before_hooking():
    model = build("mistral")
    with pytest.raises(UsageError, match="sliding-window"):
        ks.compress(model, quantize="K4V4")
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_a_left_padded_batch_on_windowed_models_matches_each_prompt_alone(family):
    """The window counts real tokens on each row (transformers' mask over the dense cache) and the
    prefill cuts each row's padding off, so a batch gives each row the tokens it gets alone."""
    torch.set_num_threads(1)
    tok, model = byte_tokenizer(), build(family)
    tok.padding_side = "left"
    texts = [PROMPT, "A short one, longer than eight."]

    def generate(enc):
        with ks.compress(model, "h2o", budget=6):
            return model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=258)[:, -5:].tolist()

    alone = [generate(tok(t, return_tensors="pt"))[0] for t in texts]
    assert generate(tok(texts, return_tensors="pt", padding=True)) == alone
