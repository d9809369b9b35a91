"""Eviction mechanics on the tiny model: nothing evicted, masking vs removal, everything evicted."""

import pytest
import torch

from kvscope.prune.evict import build_cache, continuation_logits, perplexity, prefill, structural_keep, token_logliks

PROMPT = "The key is 4471. Remember the key, then say it back."
CONT = " The key is 4471, as I was told."


@pytest.fixture(scope="module")
def setup(tiny):
    model, tok, info = tiny
    ids = tok(PROMPT, return_tensors="pt").input_ids
    cont = tok(CONT, return_tensors="pt").input_ids
    return model, info, prefill(model, tok, info, ids), ids, cont


def _score(model, pre, cont, keep, mode="auto"):
    pc = build_cache(model.config, pre, keep, mode)
    return continuation_logits(model, pc, cont, pre.n_positions), pc


def test_nothing_evicted_is_the_baseline(setup):
    model, info, pre, ids, cont = setup
    base, _ = _score(model, pre, cont, None)
    none, _ = _score(model, pre, cont, structural_keep(info, pre.n_positions, None, None))
    assert torch.equal(base, none)
    assert perplexity(token_logliks(base, cont)) == perplexity(token_logliks(none, cont))
    # and the cached pass agrees with one uncached forward over prompt + continuation (sdpa)
    with torch.inference_mode():
        full = model(input_ids=torch.cat([ids, cont], 1)).logits[0, ids.shape[1] :]
    torch.testing.assert_close(base, full, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_masking_equals_removal(setup, seed):
    model, info, pre, ids, cont = setup
    g = torch.Generator().manual_seed(seed)
    n = pre.n_positions
    # every head keeps 7 random tokens (rectangular), different tokens per head and layer
    keep = torch.zeros(info.layers, info.kv_heads, n, dtype=torch.bool)
    for layer in range(info.layers):
        for h in range(info.kv_heads):
            keep[layer, h, torch.randperm(n, generator=g)[:7]] = True
    removed, pc_r = _score(model, pre, cont, keep, "remove")
    masked, pc_m = _score(model, pre, cont, keep, "mask")
    assert pc_r.masks == {} and set(pc_m.masks) == {0, 1}
    torch.testing.assert_close(removed, masked, atol=1e-5, rtol=1e-5)
    baseline, _ = _score(model, pre, cont, None)
    assert (removed - baseline).abs().max() > 1e-3  # eviction did change something
    # memory: the kept tensors' bytes, prompt part only
    assert pc_r.kv_bytes == 2 * info.layers * info.kv_heads * 7 * info.head_dim * 4
    assert pc_r.kept_entries == info.layers * info.kv_heads * 7


def test_evict_everything_equals_no_prompt(setup):
    model, info, pre, ids, cont = setup
    n = pre.n_positions
    keep = structural_keep(info, n, list(range(info.layers)), None)
    gone, pc = _score(model, pre, cont, keep)
    assert pc.kv_bytes == 0 and pc.masks == {}
    with torch.inference_mode():
        alone = model(input_ids=cont, position_ids=torch.arange(n, n + cont.shape[1])[None]).logits[0]
    torch.testing.assert_close(gone, alone, atol=2e-5, rtol=1e-5)
    masked, _ = _score(model, pre, cont, keep, "mask")
    torch.testing.assert_close(masked, alone, atol=2e-5, rtol=1e-5)


def test_head_pruning_is_masked_and_counts_kept_bytes(setup):
    model, info, pre, ids, cont = setup
    n = pre.n_positions
    keep = structural_keep(info, n, [1], [0])  # kv_head 0 of layer 1 only
    assert keep.sum() == keep.numel() - n
    logits, pc = _score(model, pre, cont, keep)
    assert set(pc.masks) == {1}
    assert pc.kv_bytes == 2 * (keep.numel() - n) * info.head_dim * 4
    assert pc.held_bytes == 2 * keep.numel() * info.head_dim * 4  # masked: the full tensors stay allocated
    # evicting only kv_head 0 is neither the baseline nor the whole layer
    full, _ = _score(model, pre, cont, structural_keep(info, n, [1], None))
    base, _ = _score(model, pre, cont, None)
    assert not torch.allclose(logits, full) and not torch.allclose(logits, base)
    # heads alone: those kv_heads in every layer
    assert structural_keep(info, n, None, [1])[:, 1].sum() == 0 and structural_keep(info, n, None, [1])[:, 0].all()


def test_kivi_quantizes_the_prompt_only_appended_tokens_stay_full_precision(setup):
    """The documented KIVI difference: the continuation (bench: question and answer) is appended in full
    precision; KIVI's decoding would quantize each block of R keys once complete. Layer 0's keys depend
    only on the token and its position, so the appended ones equal the unquantized cache's exactly,
    while the prompt's quantized keys do not."""
    from kvscope.capturing import cache_layer_kv
    from kvscope.quant import parse_spec

    model, _, pre, _, cont = setup
    spec = parse_spec("K2V2G32R0")  # no full-precision residual: every prompt key goes through the grid
    plain, kivi = build_cache(model.config, pre, None), build_cache(model.config, pre, None, quant=spec)
    for pc in (plain, kivi):
        continuation_logits(model, pc, cont, pre.n_positions)
    (k_plain, _), (k_kivi, _) = cache_layer_kv(plain.cache, 0), cache_layer_kv(kivi.cache, 0)
    n, c = pre.n_positions, cont.shape[1]
    assert k_kivi.shape[-2] == n + c
    assert torch.equal(k_kivi[..., n:, :], k_plain[..., n:, :])  # appended: full precision
    assert not torch.equal(k_kivi[..., :n, :], k_plain[..., :n, :])  # prompt: quantized


def test_last_rows_only_are_the_last_rows(setup):
    """``rows=k`` computes the LM head on the last k rows only (bench reads the last row's argmax)."""
    model, info, pre, ids, cont = setup
    every, _ = _score(model, pre, cont, None)
    last = continuation_logits(model, build_cache(model.config, pre, None), cont, pre.n_positions, rows=4)
    assert last.shape == (4, every.shape[1]) and cont.shape[1] > 4
    torch.testing.assert_close(last, every[-4:], atol=1e-5, rtol=1e-5)
    assert int(last[-1].argmax()) == int(every[-1].argmax())
