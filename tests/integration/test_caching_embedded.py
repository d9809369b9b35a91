"""kvscope.caching on the embedded SmolLM2-135M (GQA 9:3, head_dim 64): the physics holds on a real model."""

from __future__ import annotations

import pytest
import torch

from kvscope.attention import causal_attention
from kvscope.caching import decode_step, greedy, hooked_forward, prefix_reuse

pytestmark = pytest.mark.embedded
TEXT = "Rotary embeddings turn each key by an angle that grows with its position."


def test_attention_by_hand_matches_every_layer(embedded):
    model, tok, info = embedded
    ids = tok(TEXT, return_tensors="pt").input_ids
    worst = 0.0
    for layer in range(info.layers):
        proj, _ = hooked_forward(model, info, ids, layer, use_cache=False)
        assert proj.q_pre.shape == (9, ids.shape[1], 64) and proj.k_pre.shape == (3, ids.shape[1], 64)
        out, _ = causal_attention(proj.q_post, proj.k_post, proj.v, proj.scaling)
        worst = max(worst, float((out - proj.o_in).abs().max()))
    assert worst < 1e-4


def test_cached_decode_greedy_and_prefix_reuse(embedded):
    model, tok, info = embedded
    ids = tok(TEXT, return_tensors="pt").input_ids
    d = decode_step(model, info, ids, 15, [])
    assert d.step_query_rows == 1 and d.cached_slots_before == ids.shape[1] - 1
    assert d.diffs["attention_row_cached_vs_full"] < 1e-5 and d.diffs["logits_cached_vs_full"] < 1e-3
    assert greedy(model, ids, 8, True).tokens == greedy(model, ids, 8, False).tokens
    second = TEXT.replace("position.", "index in the text.")  # shares all but " position" and "."
    ids2 = tok(second, return_tensors="pt").input_ids
    r = prefix_reuse(model, info, ids, ids2, 15, ([], []), repeats=1)
    assert r.reused == ids.shape[1] - 2 and r.logits_max_abs_diff < 1e-3
    assert torch.isfinite(r.attention).all()
