"""ks.compress on the tiny model: hooks restored, nesting refused, left-padded batches, sampling, a user's
own forward loop, the stats."""

import pytest
import torch

import kvscope as ks
from kvscope.errors import UsageError

PROMPTS = ["The key is 4471. Remember the key, then say it back to me please.", "Short one."]


def _state(model):
    return (
        model.config._attn_implementation,
        len(model._forward_pre_hooks),
        len(model._forward_hooks),
    )


def _generate(model, tok, prompts, **kw):
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok(prompts, return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id, **kw)
    return [row[enc.input_ids.shape[1] :].tolist() for row in out]


def test_hooks_gone_after_the_block_and_after_an_exception(tiny):
    model, tok, _ = tiny
    before = _state(model)
    with ks.compress(model, "snapkv", ratio=0.5):
        assert _state(model) != before
        _generate(model, tok, PROMPTS[:1])
    assert _state(model) == before
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), ks.compress(model, "h2o", ratio=0.5):
            raise exc
        assert _state(model) == before
    with pytest.raises(UsageError, match="cannot be nested"), ks.compress(model, "knorm", ratio=0.5):
        with ks.compress(model, "knorm", ratio=0.5):
            pass
    assert _state(model) == before


def test_a_left_padded_batch_gives_each_row_its_own_tokens(tiny):
    model, tok, _ = tiny
    for name in ("snapkv", "h2o", "streaming"):
        with ks.compress(model, name, ratio=0.5) as c:
            batch = _generate(model, tok, PROMPTS)
        alone = []
        for p in PROMPTS:
            with ks.compress(model, name, ratio=0.5) as one:
                alone += _generate(model, tok, [p])
            n = one.stats.tokens[0]
            assert torch.equal(c.stats.keep[PROMPTS.index(p)][..., :n], one.stats.keep[0])
        assert batch == alone, name
        assert c.stats.tokens[1] < c.stats.tokens[0]  # the short row is padded, and its padding not counted


def test_compression_changes_the_tokens_and_plain_generate_is_back_after(tiny):
    model, tok, _ = tiny
    enc = tok(PROMPTS[:1], return_tensors="pt")
    kw = dict(max_new_tokens=3, do_sample=False, output_logits=True, return_dict_in_generate=True)
    plain = model.generate(**enc, **kw).logits
    with ks.compress(model, "streaming", ratio=0.9):
        cut = model.generate(**enc, **kw).logits
    assert torch.equal(cut[0], plain[0])  # the first token comes from the prefill, before any eviction
    assert (cut[1] - plain[1]).abs().max() > 1e-3
    plain = _generate(model, tok, PROMPTS[:1])
    assert _generate(model, tok, PROMPTS[:1]) == plain
    with ks.compress(model, "streaming", ratio=0.0) as c:
        assert _generate(model, tok, PROMPTS[:1]) == plain
    assert c.stats.bytes_after == c.stats.bytes_before


def test_sampling_and_a_users_own_loop(tiny):
    model, tok, info = tiny
    tok.padding_side = "left"
    enc = tok(PROMPTS[:1], return_tensors="pt")
    with ks.compress(model, "tova", ratio=0.5):
        torch.manual_seed(0)
        a = model.generate(**enc, max_new_tokens=5, do_sample=True, top_k=20)
        torch.manual_seed(0)
        b = model.generate(**enc, max_new_tokens=5, do_sample=True, top_k=20)
        greedy = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert torch.equal(a, b) and a.shape[1] == enc.input_ids.shape[1] + 5
    from kvscope.compat import forward, output_cache

    with ks.compress(model, "tova", ratio=0.5) as c, torch.inference_mode():
        out = model(input_ids=enc.input_ids, use_cache=True)
        ids, cache = [int(out.logits[0, -1].argmax())], output_cache(out)
        for step in range(4):
            pos = torch.tensor([[enc.input_ids.shape[1] + step]])
            out = forward(model, cache, input_ids=torch.tensor([ids[-1:]]), position_ids=pos, use_cache=True)
            ids.append(int(out.logits[0, -1].argmax()))
    assert ids == greedy[0, enc.input_ids.shape[1] :].tolist()
    n = enc.input_ids.shape[1]
    k = ks.strategy("tova").budget(n, 0.5)
    assert c.stats.kept.shape == (1, info.layers, info.kv_heads)
    assert (c.stats.kept == k + 4).all()  # the plan's tokens plus the 4 fed later
    assert c.stats.keep[0].shape == (info.layers, info.kv_heads, n + 4)
    per_token = 2 * info.head_dim * 4 * info.layers * info.kv_heads  # float32 K and V
    assert c.stats.bytes_before == (n + 4) * per_token
    assert c.stats.bytes_after == (k + 4) * per_token
    assert c.stats.held_bytes == c.stats.bytes_before


def test_bad_parameters_are_one_line_errors(tiny):
    model, _, _ = tiny
    cases = [
        (dict(strategy="snapkv"), "ratio"),
        (dict(strategy="snapkv", ratio=1.0), "ratio"),
        (dict(strategy="snapkv", budget=32), "budget: snapkv"),
        (dict(strategy="h2o", budget=0), "budget"),
        (dict(strategy="h2o", budget=4, every=5), "every"),
        (dict(strategy=ks.strategy("snapkv"), ratio=0.5, window=8), "settings"),
        (dict(), "nothing to do"),
    ]
    for kw, words in cases:
        with pytest.raises(ValueError, match=words) as err:
            ks.compress(model, **kw)
        assert isinstance(err.value, UsageError) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="no setting"):
        ks.compress(model, "snapkv", ratio=0.5, windw=8)
    assert ks.strategy("snapkv", window=64).label == "snapkv(window=64)"


def test_an_error_inside_generate_leaves_the_model_clean_and_stats_readable(tiny):
    model, tok, _ = tiny
    before = _state(model)
    enc = tok(PROMPTS[:1], return_tensors="pt")
    calls = []

    def fail_on_layer_1(module, *_):
        calls.append(1)
        if len(calls) > 3:  # in the middle of a decode step: layer 0 has grown its keep mask, layer 1 not
            raise KeyboardInterrupt

    handle = model.model.layers[1].register_forward_pre_hook(fail_on_layer_1)
    try:
        with pytest.raises(KeyboardInterrupt), ks.compress(model, "h2o", budget=8) as c:
            model.generate(**enc, max_new_tokens=6, do_sample=False)
    finally:
        handle.remove()
    assert _state(model) == before
    assert c.stats.max_held <= 8 and c.stats.sequences == 1


def test_a_strategy_and_kivi_together(tiny):
    model, tok, info = tiny
    enc = tok(PROMPTS[:1], return_tensors="pt")
    with ks.compress(model, "streaming", ratio=0.5, quantize="K4V4R0") as both:
        model.generate(**enc, max_new_tokens=4, do_sample=False)
    with ks.compress(model, "streaming", ratio=0.5) as evict_only:
        model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert torch.equal(both.stats.kept, evict_only.stats.kept)
    assert both.stats.bytes_after < evict_only.stats.bytes_after < both.stats.bytes_before
    with pytest.raises(UsageError, match="different numbers of tokens per kv_head"):  # adakv: ragged per head
        with ks.compress(model, "adakv", ratio=0.5, quantize="K4V4R0"):
            model.generate(**enc, max_new_tokens=2, do_sample=False)
    assert model.config._attn_implementation != "kvscope_compress"
