"""A forward of many teacher-forced tokens under ``ks.compress(..., budget=N)`` is as many decode steps:
the same logits (to float rounding) and the same keep masks, steps held and ``max_held`` as one token per
forward, for every decode-time scorer, ``every`` 1..4, a batch of a left-padded and a full row, and a
model with sliding windows and soft-capping (gemma2)."""

from __future__ import annotations

import pytest
import torch

import kvscope as ks
from kvscope.bench.streaming import CONFIGS
from kvscope.compat import forward, output_cache
from tests.families import build

T = 40  # tokens per row
PROMPT = 12  # tokens of the first forward (the prompt, then cut to the budget)
PAD = 3  # left padding of row 0
CHUNK = 7  # tokens per forward after the prompt: uneven, so chunks end anywhere
TOLERANCE = 1e-5  # float32 logits: a chunk's matmuls and one token's differ only in reduction order
SCORERS = CONFIGS  # the decode-time task's configurations: label -> (strategy, settings)
MODELS = {"llama3": 10, "gemma2": 6}  # model -> budget (gemma2's window 8: its sliding layers hold 7)


@pytest.fixture(scope="module", params=list(MODELS))
def model_ids(request):
    """``(name, model, ids [2, T], mask [2, T])``: row 0 left-padded by ``PAD``, row 1 full. The tokens are
    distinct: two copies of a token have layer-0 keys of the same norm (RoPE rotates them), which KNorm
    would tie-break by float rounding, and a chunk's rounding is not one token's."""
    ids = torch.randperm(256, generator=torch.Generator().manual_seed(0))[: 2 * T].view(2, T)
    mask = torch.ones_like(ids)
    mask[0, :PAD] = 0
    return request.param, build(request.param), ids, mask


def feed(model, ids, mask, chunk: int, label: str, budget: int, every: int):
    """Logits ``[2, T - PROMPT, vocab]`` of ``ids`` fed ``PROMPT`` tokens, then ``chunk`` per forward, and
    the compressor (``.stats`` and its session's ``step_held()``)."""
    name, settings = SCORERS[label]
    logits = []
    with torch.inference_mode(), ks.compress(model, name, budget=budget, every=every, **settings) as c:
        cache = output_cache(forward(model, None, input_ids=ids[:, :PROMPT], attention_mask=mask[:, :PROMPT]))
        for s in range(PROMPT, ids.shape[1], chunk):
            e = min(s + chunk, ids.shape[1])
            out = forward(model, cache, input_ids=ids[:, s:e], attention_mask=mask[:, :e], use_cache=True)
            cache = output_cache(out)
            logits.append(out.logits.float())
        held = c.session.step_held()
    return torch.cat(logits, 1), c, held


@pytest.mark.parametrize("every", [1, 2, 3, 4])
@pytest.mark.parametrize("label", list(SCORERS))
def test_a_chunk_equals_one_token_per_forward(model_ids, label, every):
    name, model, ids, mask = model_ids
    budget = MODELS[name]
    one, c1, held1 = feed(model, ids, mask, 1, label, budget, every)
    many, c2, held2 = feed(model, ids, mask, CHUNK, label, budget, every)
    diff = float((one - many).abs().max())
    assert diff < TOLERANCE, (label, every, diff)
    for row in range(2):
        assert torch.equal(c1.stats.keep[row], c2.stats.keep[row]), (label, every, row)
    steps = ids.shape[1] - PROMPT
    assert held1 == held2 and len(held2) == steps and max(held2) <= budget
    assert c2.stats.max_held == c1.stats.max_held == max(held2)
    if every == 1 and name == "llama3":  # full from the prompt on: every step holds the budget
        assert held2 == [budget] * steps
    dense = feed_dense(model, ids, mask)
    assert float((many - dense).abs().max()) > 1e-3  # the eviction did change the logits


def feed_dense(model, ids, mask) -> torch.Tensor:
    """Logits ``[2, T - PROMPT, vocab]`` of one forward without compression."""
    with torch.inference_mode():
        return forward(model, None, input_ids=ids, attention_mask=mask).logits[:, PROMPT:].float()
