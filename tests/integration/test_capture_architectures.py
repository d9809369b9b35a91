"""Capture beyond Llama: Qwen3 (k_norm before RoPE) and Mistral with a sliding window."""

from __future__ import annotations

import pytest
import torch

from kvscope.capture.capturing import run_capture
from kvscope.models import byte_tokenizer, describe
from tests.families import build


@pytest.mark.parametrize("kind", ["qwen3", "mistral"])
def test_capture_parity_on_other_architectures(kind):
    model, tok = build(kind), byte_tokenizer()
    info = describe(model, kind)
    ids = tok("hello there, general kenobi", return_tensors="pt").input_ids
    n = ids.shape[1]
    with torch.inference_mode():
        plain = model(ids).logits[0]
    res = run_capture(model, ids, tok, info=info, attention=True, pre_rope=True, keep_logits=True)
    torch.testing.assert_close(res.logits, plain, atol=1e-5, rtol=1e-5)
    snap = res.snapshot
    torch.testing.assert_close(snap.attention_received.sum(-1), torch.full((2, 2), float(n * 2)))
    if kind == "mistral":  # the sliding cache keeps window - 1 slots: the last positions
        assert snap.keys[0].shape == (2, 7, 16)
        assert snap.layer_positions(0).tolist() == list(range(n - 7, n))
        assert snap.attention_counts[0, 0].item() == 8 * 2  # seen by the 8 queries in its window
    else:  # pre-RoPE keys come after k_norm, so they rotate exactly into the cached keys
        from transformers.models.qwen3.modeling_qwen3 import rotate_half

        cos, sin = model.model.rotary_emb(snap.pre_rope_keys[0][None], snap.positions[None])
        k = snap.pre_rope_keys[0]
        torch.testing.assert_close(k * cos[0] + rotate_half(k) * sin[0], snap.keys[0], atol=1e-5, rtol=1e-5)
