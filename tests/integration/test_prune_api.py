"""The library entry points on the tiny model: compare_pruning and friends take a user's own model."""

import pytest
import torch

from kvscope.errors import UsageError
from kvscope.prune import compare_pruning, scan_pruning, sweep_pruning
from kvscope.prune.evict import build_cache, continuation_logits, perplexity, prefill, token_logliks
from kvscope.prune.scan import encode_texts
from kvscope.prune.strategies import make_strategy

PROMPT = "The lamp flashes twice, then once. Mara keeps the light on Harrow Point."
CONT = " Mara keeps it."


def test_compare_pruning_matches_a_direct_measurement(tiny):
    model, tok, info = tiny
    res = compare_pruning(model, tok, PROMPT, CONT, "snapkv", 0.5, window=16, repeats=2, decode_tokens=2, info=info)
    ids, cont = encode_texts(tok, info, PROMPT, CONT)
    pre = prefill(model, tok, info, ids)
    keep = make_strategy("snapkv", window=16).keep(pre, 0.5)
    direct = perplexity(
        token_logliks(continuation_logits(model, build_cache(model.config, pre, keep), cont, pre.n_positions), cont)
    )
    assert res.pruned.ppl == direct and res.plan == "snapkv(window=16) 0.5"
    assert res.settings["window"] == 16 and res.prefills == 1 and res.warnings == []
    assert res.pruned.kv_bytes_fp16 * 2 == res.pruned.kv_bytes  # float32 cache
    assert "not a ranking" in repr(res) and len(repr(res)) < 200
    html = res._repr_html_()
    assert "<table>" in html and "not a ranking" in html and "KV bytes (float16)" in html


def test_compare_pruning_validates_before_running(tiny):
    model, tok, info = tiny
    calls = []
    hook = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        for kwargs, needle in [
            (dict(strategy="quest"), "unknown strategy"),
            (dict(ratio=1.0), "between 0 and 1"),
            (dict(window=0), "at least 1"),
            (dict(quantize="int4"), "cannot parse"),
            (dict(layers=[9]), "out of range"),
            (dict(strategy=None, window=8), "need a strategy"),
        ]:
            with pytest.raises(UsageError, match=needle):
                compare_pruning(model, tok, PROMPT, CONT, **{"strategy": "snapkv", **kwargs})
    finally:
        hook.remove()
    assert calls == []  # nothing ran


def test_sweep_and_scan_entry_points(tiny):
    model, tok, info = tiny
    res = sweep_pruning(
        model,
        tok,
        PROMPT,
        CONT,
        ratios=(0.5,),
        strategies=["tova", make_strategy("adakv")],
        quantize=("K4V4R0",),
        info=info,
    )
    assert [r.method for r in res.rows] == ["baseline", "tova", "adakv", "kivi"] and res.prefills == 1
    assert "not a ranking" in repr(res) and "<table>" in res._repr_html_()
    scan = scan_pruning(model, tok, PROMPT, CONT, "layers", info=info)
    assert scan.ppl.shape == (info.layers,) and scan.predicted_potential.shape == (info.layers,)
    assert torch.isfinite(torch.tensor(scan.ppl)).all()
