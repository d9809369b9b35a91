"""The eviction engine on eleven families: it reproduces each model exactly when it keeps everything
(fused QKV, multi-query, soft-capping, sliding windows included), and masking equals removal."""

from __future__ import annotations

import pytest
import torch

from kvscope.archs import layer_attention, refusal
from kvscope.models import byte_tokenizer, describe
from kvscope.prune.evict import build_cache, continuation_logits, prefill
from tests.families import FAMILIES, WINDOW, build

PROMPT = "The quick brown fox jumps over the lazy dog."  # 44 tokens: longer than the window
CONT = " And then it ran far away."


@pytest.fixture(scope="module")
def ids():
    tok = byte_tokenizer()
    return tok, tok(PROMPT, return_tensors="pt").input_ids, tok(CONT, return_tensors="pt").input_ids


def plan(info, n: int) -> torch.Tensor:
    """Evict the same 5 positions in every kv_head: some old, two inside the window."""
    keep = torch.ones(info.layers, info.kv_heads, n, dtype=torch.bool)
    keep[:, :, [3, 5, 7, n - 2, n - 4]] = False
    return keep


@pytest.mark.parametrize("family", list(FAMILIES))
def test_engine_reproduces_the_model_and_evicts(family, ids):
    torch.set_num_threads(1)
    tok, p, c = ids
    model = build(family)
    info = describe(model, family)
    n = p.shape[1]
    with torch.inference_mode():
        ref = model(torch.cat([p, c], 1)).logits[0, n:].float()
    pre = prefill(model, tok, info, p)
    full = continuation_logits(model, build_cache(model.config, pre, None), c, n)
    assert (full - ref).abs().max() < 1e-5  # the engine is the model when nothing is evicted
    masked = continuation_logits(model, build_cache(model.config, pre, plan(info, n), mode="mask"), c, n)
    removed = continuation_logits(model, build_cache(model.config, pre, plan(info, n), mode="remove"), c, n)
    assert (masked - removed).abs().max() < 1e-5
    assert (masked - ref).abs().max() > 1e-3  # and eviction does change the continuation


def test_windowed_layers_count_what_their_cache_holds(ids):
    tok, p, _ = ids
    model = build("gemma2")
    info = describe(model, "gemma2")
    n = p.shape[1]
    assert [a.window for a in layer_attention(model)] == [WINDOW, None, WINDOW, None]
    assert [a.softcap for a in layer_attention(model)] == [0.5] * 4
    pre = prefill(model, tok, info, p)
    assert pre.held == [WINDOW - 1, n, WINDOW - 1, n]
    per_token = 2 * info.kv_heads * info.head_dim * 4  # K and V, float32, one layer
    assert build_cache(model.config, pre, None).kv_bytes == per_token * (2 * (WINDOW - 1) + 2 * n)
    # evicting inside the window frees bytes there; evicting before it frees nothing in windowed layers
    pc = build_cache(model.config, pre, plan(info, n))
    assert pc.kv_bytes == per_token * (2 * (WINDOW - 3) + 2 * (n - 5))
    assert sorted(pc.positions) == [0, 2] and pc.positions[0][0].tolist()[-2:] == [n - 3, n - 1]


def test_refusal_from_the_config_alone():
    from transformers import Llama4TextConfig

    assert refusal(build("mistral").config) is None
    why = refusal(Llama4TextConfig(num_hidden_layers=4, attention_chunk_size=16, no_rope_layers=[1, 1, 1, 0]))
    assert why and "chunked_attention" in why
