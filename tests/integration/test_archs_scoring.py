"""The strategies' own attention scores are the model's attention: on Gemma 2 (logit soft-capping,
alternating sliding window), Gemma 3 (per-layer rotary, q/k norms, alternating window) and Mistral (a
window on every layer), with a prompt several windows long, the probabilities the strategies compute
by hand equal the model's eager attention weights (``output_attentions=True``)."""

from __future__ import annotations

import pytest
import torch

from kvscope.models import byte_tokenizer, describe
from kvscope.prune.evict import prefill
from kvscope.prune.strategies import make_strategy
from kvscope.prune.strategies.base import last_probs
from tests.families import WINDOW, build

PROMPT = "The quick brown fox jumps over the lazy dog near the river."  # 59 tokens, window 8
WINDOWED = ("gemma2", "gemma3", "mistral")
TOLERANCE = 1e-5


def eager_and_prefill(family: str):
    """The model's eager attention ``[layer][q_head, n, n]`` and kvscope's prefill of the same prompt."""
    torch.set_num_threads(1)
    tok = byte_tokenizer()
    model = build(family)  # eager attention
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.inference_mode():
        eager = [a[0].double() for a in model(ids, output_attentions=True, use_cache=False).attentions]
    return model, eager, prefill(model, tok, describe(model, family), ids)


@pytest.fixture(scope="module", params=WINDOWED)
def case(request):
    return (request.param, *eager_and_prefill(request.param))


def test_hand_computed_probabilities_equal_eager_attention(case):
    family, model, eager, pre = case
    n = pre.n_positions
    assert n > 4 * WINDOW and any(pre.windows)
    if family == "gemma2":
        assert pre.softcap == 0.5
    worst = 0.0
    for layer, ref in enumerate(eager):
        mine = last_probs(pre, layer, n)  # every query: [kv_head, group, n, n]
        worst = max(worst, float((mine.reshape(ref.shape) - ref).abs().max()))
        if pre.windows[layer]:  # the window really hides the older keys
            assert float(ref[:, -1, : n - WINDOW].abs().max()) == 0.0
    print(f"{family}: max |hand - eager| = {worst:.1e}")
    assert worst < TOLERANCE


def test_snapkv_and_tova_score_with_the_models_attention(case):
    """SnapKV's window votes and TOVA's last-query scores, rebuilt from the eager weights."""
    _, _, eager, pre = case
    n = pre.n_positions
    snapkv, tova = make_strategy("snapkv", window=16), make_strategy("tova")
    votes = torch.stack([a[:, -16:].reshape(pre.keys[i].shape[1], -1, n).sum(1) for i, a in enumerate(eager)])
    pooled = torch.nn.functional.avg_pool1d(votes, 5, stride=1, padding=2, count_include_pad=False)
    assert (snapkv.pooled(pre) - pooled).abs().max() < TOLERANCE
    last = torch.stack([a[:, -1].mean(0) for a in eager])  # [layer, n]
    scores = tova.scores(pre, n // 2)[:, 0]
    assert (scores[:, :-1] - last[:, :-1]).abs().max() < TOLERANCE  # the last token is protected
