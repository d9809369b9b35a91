"""ks.compress with budget=N while decoding (tiny model): the cache never holds more than N tokens per
kv_head at any step, and StreamingLLM and H2O equal a brute-force reference that recomputes the whole
sequence at every step with an explicit mask of what each query could see."""

import contextvars

import pytest
import torch

import kvscope as ks
from kvscope.attention_interface import register_attention, routed
from kvscope.prune.strategies.base import PROTECT, recent_bonus, sinks_and_recent, top_keep

PROMPT = "The key is 4471. Remember the key, then say it back to me please, and then count to ten."
STEPS = 12
BUDGET = 10
_VIS: contextvars.ContextVar = contextvars.ContextVar("bruteforce")


@pytest.mark.parametrize("name", ["streaming", "h2o", "tova", "knorm", "random"])
@pytest.mark.parametrize("every", [1, 3])
def test_the_cache_never_holds_more_than_the_budget(tiny, name, every):
    model, tok, info = tiny
    enc = tok(PROMPT, return_tensors="pt")
    seen = []
    with ks.compress(model, name, budget=BUDGET, every=every) as c:
        handle = model.register_forward_hook(lambda *_: seen.append(int(c.held().max())))
        try:
            model.generate(**enc, max_new_tokens=STEPS, do_sample=False)
        finally:
            handle.remove()
    assert len(seen) == STEPS and max(seen) <= BUDGET
    assert c.stats.max_held <= BUDGET
    assert c.stats.keep[0].shape[-1] == enc.input_ids.shape[1] + STEPS - 1
    if every == 1:
        assert seen == [BUDGET] * STEPS  # the prompt is longer than the budget: always full
        assert (c.stats.kept == BUDGET).all()
    else:
        assert min(seen[1:]) == BUDGET - every + 1  # evicts in bursts down to N - every + 1


def _bruteforce_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    vis, probs_out = _VIS.get()
    layer = module.layer_idx
    group = query.shape[1] // key.shape[1]
    allowed = vis[layer].repeat_interleave(group, 0)[None]  # [1, q_head, T, T]
    k, v = key.repeat_interleave(group, 1).double(), value.repeat_interleave(group, 1).double()
    scores = torch.matmul(query.double(), k.transpose(-1, -2)) * scaling
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
    probs_out[layer] = probs[0].view(key.shape[1], group, *probs.shape[2:]).sum(1)  # [kv_head, T, T]
    return torch.matmul(probs, v).to(query.dtype).transpose(1, 2).contiguous(), None


def _reference(model, info, ids, name, budget, steps):
    """Greedy tokens with the whole sequence recomputed (no cache) at every step; ``kept[layer]`` bool
    ``[kv_head, T]`` evolves by the policy; query ``i`` sees the keys kept when it was processed."""
    register_attention("kvscope_test_bruteforce", _bruteforce_attention, lambda *a, **k: None)
    n, layers, kv = ids.shape[1], info.layers, info.kv_heads
    total = n + steps - 1
    vis = [torch.zeros(kv, total, total, dtype=torch.bool) for _ in range(layers)]
    for layer in range(layers):
        vis[layer][:, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
    received = [torch.zeros(kv, total, dtype=torch.float64) for _ in range(layers)]
    seq, out = ids[0].tolist(), []
    kept = None
    for t in range(n, n + steps):  # position t is the token being predicted
        T = len(seq)
        probs = {}
        with routed(model, "kvscope_test_bruteforce"), torch.inference_mode():
            token = _VIS.set(([v[:, :T, :T] for v in vis], probs))
            try:
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            finally:
                _VIS.reset(token)
        out.append(int(logits.argmax()))
        if T == n:  # after the prefill: received from every prompt query, then the prompt cut to budget
            for layer in range(layers):
                received[layer][:, :n] = probs[layer].sum(1)
            k = min(n, budget)
            if name == "streaming":
                scores = sinks_and_recent(n, k, 4).expand(layers, kv, n)
            else:
                scores = torch.stack([received[layer][:, :n] + recent_bonus(n, k // 2) for layer in range(layers)])
            kept = [top_keep(scores[layer], k) for layer in range(layers)]
        else:  # the decode step of position T - 1: its own row of probs adds to received
            for layer in range(layers):
                received[layer][:, :T] += probs[layer][:, T - 1]
        if t == n + steps - 1:
            break
        seq.append(out[-1])
        pos = len(seq) - 1  # the next step feeds this position: evict, then it sees what is kept
        for layer in range(layers):
            row = torch.cat([kept[layer], torch.ones(kv, 1, dtype=torch.bool)], -1)
            if row.sum(-1).max() > budget:
                if name == "streaming":
                    score = torch.arange(pos + 1, dtype=torch.float64) + 2 * PROTECT * (torch.arange(pos + 1) < 4)
                    score = score.expand(kv, -1)
                else:
                    score = received[layer][:, : pos + 1].clone()
                    score[:, pos + 1 - budget // 2 :] += PROTECT
                candidates = row.clone()
                candidates[:, pos] = False
                worst = score.masked_fill(~candidates, float("inf")).argmin(-1)
                row[torch.arange(kv), worst] = False
            kept[layer] = row
            vis[layer][:, pos, : pos + 1] = row
    return out, kept


@pytest.mark.parametrize("name", ["streaming", "h2o"])
def test_decode_time_eviction_equals_a_bruteforce_reference(tiny, name):
    model, tok, info = tiny
    ids = tok(PROMPT, return_tensors="pt").input_ids
    want, kept = _reference(model, info, ids, name, BUDGET, STEPS)
    with ks.compress(model, name, budget=BUDGET) as c:
        got = model.generate(input_ids=ids, max_new_tokens=STEPS, do_sample=False)[0, ids.shape[1] :].tolist()
    assert got == want
    assert torch.equal(c.stats.keep[0], torch.stack(kept))
