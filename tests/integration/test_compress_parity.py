"""ks.compress around model.generate gives the same greedy tokens as kvscope bench's own path (prefill once,
a pruned or KIVI copy of the cache, decoding at true positions) on the embedded model."""

import pytest
import torch

import kvscope as ks
from kvscope.prune.evict import build_cache, decode, prefill
from kvscope.prune.strategies import STRATEGIES, make_strategy
from kvscope.quant import parse_spec

pytestmark = pytest.mark.embedded

TEXT = (
    "Berlin is the capital of Germany and Rome is the capital of Italy. The secret code is 7391. "
    "Madrid is the capital of Spain. The secret code is"
)
STEPS = 4
RATIOS = (0.25, 0.5, 0.9)


@pytest.fixture(scope="module")
def setup(embedded):
    model, tok, info = embedded
    ids = tok(TEXT, return_tensors="pt").input_ids
    with torch.inference_mode():
        first = int(model(input_ids=ids).logits[0, -1].argmax())
    return model, tok, info, ids, first


def _bench(model, pre, first, keep=None, quant=None):
    pc = build_cache(model.config, pre, keep, quant=quant)
    return [first] + decode(model, pc, first, pre.n_positions, STEPS - 1), pc


def _compress(model, ids, *args, **kw):
    with torch.inference_mode(), ks.compress(model, *args, **kw) as c:
        out = model.generate(input_ids=ids, max_new_tokens=STEPS, do_sample=False)
    return out[0, ids.shape[1] :].tolist(), c.stats


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_matches_bench(setup, name):
    model, tok, info, ids, first = setup
    pre = prefill(model, tok, info, ids)
    strategy = make_strategy(name)
    for ratio in RATIOS:
        keep = strategy.keep(pre, ratio)
        want, pc = _bench(model, pre, first, keep)
        got, stats = _compress(model, ids, strategy, ratio=ratio)
        assert got == want, (name, ratio)
        n = ids.shape[1]
        assert torch.equal(stats.keep[0][..., :n], keep)  # the same positions kept
        assert torch.equal(stats.kept[0], keep.sum(-1) + STEPS - 1)  # + the decoded tokens fed back
        prompt_bytes = pc.kv_bytes  # bench's bytes for the kept prompt
        later = (STEPS - 1) * info.layers * info.kv_heads * 2 * info.head_dim * 4
        assert stats.bytes_after == prompt_bytes + later


def _layers(cache):
    return [(layer.keys, layer.values) for layer in cache.layers]


@pytest.mark.parametrize("spec", ["K4V4", "K2V2"])
def test_kivi_matches_bench(setup, spec):
    model, tok, info, _, _ = setup
    ids = tok(" ".join([TEXT] * 5), return_tensors="pt").input_ids  # longer than KIVI's residual (128)
    assert ids.shape[1] > 128
    with torch.inference_mode():
        first = int(model(input_ids=ids).logits[0, -1].argmax())
    pre = prefill(model, tok, info, ids)
    want, pc = _bench(model, pre, first, quant=parse_spec(spec))
    with torch.inference_mode(), ks.compress(model, quantize=spec) as c:
        out = model.generate(input_ids=ids, max_new_tokens=STEPS, do_sample=False, return_dict_in_generate=True)
    got, stats = out.sequences[0, ids.shape[1] :].tolist(), c.stats
    assert got == want
    n = ids.shape[1]
    for (k, v), (bk, bv) in zip(_layers(out.past_key_values), _layers(pc.cache)):  # the same quantized prompt
        assert torch.equal(k[:, :, :n], bk[:, :, :n]) and torch.equal(v[:, :, :n], bv[:, :, :n])
    later = (STEPS - 1) * info.layers * info.kv_heads * 2 * info.head_dim * 4
    assert stats.bytes_after == pc.kv_bytes + later
    assert stats.bytes_after < stats.bytes_before
