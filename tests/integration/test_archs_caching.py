"""The caching lesson on eleven families: attention rebuilt by hand (with the model's soft-capping,
window, q/k norms and per-layer RoPE) matches the model, a cached decode step matches recomputation,
and the figure's verdict says "match" only when the check passed."""

from __future__ import annotations

import pytest
import torch

from kvscope.caching import explain_caching
from kvscope.caching.caching_figures import _by_hand_verdict
from kvscope.caching.explain import ATTENTION_TOLERANCE
from kvscope.models import byte_tokenizer, describe
from tests.families import FAMILIES, build

PROMPT = "The quick brown fox jumps over the lazy dog."  # longer than the window (8)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_attention_by_hand_and_decode_step_match_on_every_family(family):
    torch.set_num_threads(1)
    model = build(family)
    r = explain_caching(
        model, byte_tokenizer(), PROMPT, "The quick brown cat.", layer=0, new_tokens=2, repeats=1,
        info=describe(model, family), quiet=True,
    )  # fmt: skip
    assert r.manual_vs_model < ATTENTION_TOLERANCE / 10
    assert max(r.decode.diffs.values()) < 1e-5, r.decode.diffs
    assert r.prefix.logits_match and r.generation_tokens_equal
    assert r.to_dict()["projections"]["matches"] is True
    assert _by_hand_verdict(r).count("matches the o_proj input") == 1


def test_the_verdict_says_mismatch_when_the_check_fails():
    """Gemma 2 by hand without its soft-capping is off; the figure then says so instead of 'matches'."""
    model = build("gemma2")
    r = explain_caching(
        model, byte_tokenizer(), PROMPT, "The quick brown cat.", layer=0, new_tokens=2, repeats=1, quiet=True
    )
    p = r.projections
    assert p.softcap == 0.5 and p.window == 8
    out, _ = p.__class__(**{**p.__dict__, "softcap": None}).by_hand()
    r.manual_vs_model = float((out - p.o_in).abs().max())
    assert r.manual_vs_model > ATTENTION_TOLERANCE
    verdict = _by_hand_verdict(r)
    assert "DOES NOT MATCH" in verdict and "matches" not in verdict
