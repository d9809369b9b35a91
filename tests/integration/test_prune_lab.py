"""Lab, sweep, scan and leave-one-out on the tiny model: numbers agree with direct measurements."""

import math

import numpy as np
import pytest
import torch

from kvscope.errors import UsageError
from kvscope.prune.evict import build_cache, continuation_logits, decode, prefill, structural_keep, token_logliks
from kvscope.prune.lab import Plan, compare, make_plan, measure
from kvscope.prune.loo import leave_one_out
from kvscope.prune.scan import encode_texts, scan
from kvscope.prune.sweep import sweep, to_csv
from kvscope.quant import parse_spec

PROMPT = "Mara keeps the lamp. It flashes twice, then once."
CONT = " Mara keeps it."


@pytest.fixture(scope="module")
def setup(tiny):
    model, tok, info = tiny
    ids, cont = encode_texts(tok, info, PROMPT, CONT)
    return model, tok, info, prefill(model, tok, info, ids), cont


def test_compare_reports_both_runs(setup):
    model, tok, info, pre, cont = setup
    plan = make_plan(info, pre, layers=[0], heads=None)
    rep = compare(model, info, pre, cont, plan, repeats=1, decode_tokens=2)
    assert rep.baseline.kv_bytes == 2 * 2 * pre.n_positions * 16 * 4 * 2  # K+V, 2 layers, 2 kv_heads
    assert rep.pruned.kv_bytes == rep.baseline.kv_bytes // 2
    assert rep.changes()["kv_bytes"] == -50.0
    assert rep.baseline.continuation_ms > 0 and rep.pruned.decode_ms > 0
    ll = token_logliks(continuation_logits(model, build_cache(model.config, pre, None), cont, pre.n_positions), cont)
    assert rep.baseline.ppl == math.exp(-float(ll.mean()))
    assert rep.scored_tokens == cont.shape[1] - 1 == len(rep.baseline.logliks)


def test_make_plan_combines_and_validates(setup):
    _, _, info, pre, _ = setup
    both = make_plan(info, pre, layers=[1], heads=[0], strategy="streaming", ratio=0.5)
    assert both.keep[1, 0].sum() == 0 and both.keep[0, 0].sum() == math.ceil(pre.n_positions / 2)
    with pytest.raises(UsageError, match=r"0\.\.1"):
        make_plan(info, pre, layers=[2])
    with pytest.raises(UsageError, match="2 kv_heads .*GQA"):
        make_plan(info, pre, heads=[2])
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(UsageError, match="between 0 and 1"):
            make_plan(info, pre, strategy="knorm", ratio=bad)
    with pytest.raises(UsageError, match="nothing to prune"):
        make_plan(info, pre)


def test_quantization_bytes_and_effect(setup):
    model, _, info, pre, cont = setup
    base = measure(model, pre, cont, Plan("baseline"))
    k8 = measure(model, pre, cont, Plan("K8V8", quant=parse_spec("K8V8R0")))
    k2 = measure(model, pre, cont, Plan("K2V2", quant=parse_spec("K2V2R0")))
    n, d = pre.n_positions, info.head_dim
    groups_k = math.ceil(n / 32) * d  # per layer and kv_head: per-channel groups of 32 positions
    groups_v = n * (d // 16 if d % 32 else d // 32)  # per-token groups of 32 channels (head_dim 16: one)
    per_head = math.ceil(n * d * 2 / 8) * 2 + 2 * 2 * (groups_k + groups_v)
    assert k2.kv_bytes == k2.kv_bytes_fp16 == info.layers * info.kv_heads * per_head
    assert abs(k8.ppl - base.ppl) < abs(k2.ppl - base.ppl)
    # the default residual R = 128 is longer than this prompt: everything stays in full precision
    r128 = measure(model, pre, cont, Plan("K2V2R128", quant=parse_spec("K2V2")))
    assert r128.ppl == base.ppl and r128.kv_bytes_fp16 == base.kv_bytes_fp16 == base.kv_bytes // 2


def test_sweep_prefills_once_and_writes_rows(setup):
    model, tok, info, pre, cont = setup
    calls = []  # an independent count: every forward call, with whether it extended a non-empty cache

    def record(_mod, _args, kw):
        cache = kw.get("cache", kw.get("past_key_values"))
        calls.append(cache is not None and cache.get_seq_length() > 0)

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        fresh = prefill(model, tok, info, pre.prompt_ids)
        res = sweep(
            model, "tiny", fresh, cont, ratios=(0.5, 0.75), strategies=["knorm", "random"], quant_specs=("K4V4",)
        )
    finally:
        hook.remove()
    assert [r.method for r in res.rows] == ["baseline", "knorm", "knorm", "random", "random", "kivi"]
    assert calls.count(True) == len(res.rows)  # one continuation pass per configuration
    assert res.prefills == len(calls) - len(res.rows) == 1  # and the one prefill, counted
    assert res.rows[0].ppl_change_pct == 0.0
    knorm = res.rows[1]
    direct = measure(model, pre, cont, make_plan(info, pre, strategy="knorm", ratio=0.5))
    assert knorm.ppl == direct.ppl and knorm.kv_bytes == direct.kv_bytes
    assert to_csv(res).splitlines()[0].startswith("method,setting,ratio,ppl")


def test_scan_matches_single_evictions(setup):
    model, tok, info, pre, cont = setup
    layers = scan(model, tok, info, "layers", pre=pre, cont_ids=cont)
    heads = scan(model, tok, info, "heads", pre=pre, cont_ids=cont)
    assert layers.ppl.shape == (2,) and heads.ppl_change_pct.shape == (2, 2)
    one = measure(model, pre, cont, Plan("l1h0", structural_keep(info, pre.n_positions, [1], [0])))
    assert heads.ppl[1, 0] == one.ppl
    assert np.allclose(layers.ppl_change_pct, 100 * (layers.ppl / layers.baseline_ppl - 1))
    with pytest.raises(UsageError):
        scan(model, tok, info, "tokens", pre=pre, cont_ids=cont)


def test_leave_one_out(setup):
    model, tok, info, pre, cont = setup
    res = leave_one_out(model, "tiny", PROMPT, pre, cont)
    n = pre.n_positions
    assert res.delta_loglik.shape == (n,) and len(res.tokens) == n
    keep = torch.ones(info.layers, info.kv_heads, n, dtype=torch.bool)
    keep[:, :, 3] = False
    assert res.delta_loglik[3] == measure(model, pre, cont, Plan("x", keep)).loglik - res.baseline_loglik
    gt = res.ground_truth_json()
    assert set(gt) == {"model", "prompt", "tokens", "token_ids", "delta_loglik"}
    assert set(res.spearman) == {"magnitude", "mean_abs", "low key norm", "attention received", "mean attention"}
    keys, values = pre.snapshot.keys, pre.snapshot.values
    by_hand_mean_abs = sum(
        float(keys[layer][h, 5].abs().mean() + values[layer][h, 5].abs().mean())
        for layer in range(info.layers)
        for h in range(info.kv_heads)
    ) / (info.layers * info.kv_heads)
    assert res.proxies["mean_abs"][5] == pytest.approx(by_hand_mean_abs)
    snap = pre.snapshot
    by_hand = sum(
        float(snap.attention_received[layer, h, 5]) / float(snap.attention_counts[layer, 5])
        for layer in range(info.layers)
        for h in range(info.kv_heads)
    ) / (info.layers * info.kv_heads)
    assert res.proxies["mean attention"][5] == pytest.approx(by_hand)


def test_continuation_validation(setup):
    _, tok, info, _, _ = setup
    with pytest.raises(UsageError, match="continuation is empty"):
        encode_texts(tok, info, PROMPT, "  ")
    with pytest.raises(UsageError, match="at least two tokens"):
        encode_texts(tok, info, PROMPT, "x")


def test_decode_continues_at_the_right_positions(setup):
    model, tok, info, pre, cont = setup
    pc = build_cache(model.config, pre, None)
    logits = continuation_logits(model, pc, cont, pre.n_positions)
    first = int(logits[-1].argmax())
    ours = decode(model, pc, first, pre.n_positions + cont.shape[1], 4)
    ids = torch.cat([pre.prompt_ids, cont, torch.tensor([[first]])], 1)
    with torch.inference_mode():
        ref = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=258)[0, ids.shape[1] :].tolist()
    assert ours == ref
