"""kvpress presses inside kvscope (the extra ``kvscope[kvpress]``; skipped where kvpress is not installed, run
by ``make test-oldest``): kvpress's own presses, run on the embedded model with ``with press(model)``, keep
the positions kvscope's strategies keep (streaming, knorm, tova with ``rounding="floor"``) and the positions
kvscope's adapter keeps when it runs the same press; bench and ``ks.compress`` take presses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import kvscope as ks
from kvscope.errors import KvscopeError, UsageError
from kvscope.prune.evict import build_cache, decode, prefill
from kvscope.prune.strategies import make_strategy, parse_settings
from kvscope.prune.strategies.kvpress_adapter import attached
from tests.helpers import assert_one_line_error, run_cli

kvpress = pytest.importorskip("kvpress")

pytestmark = pytest.mark.kvpress

TEXT = (
    "Berlin is the capital of Germany and Rome is the capital of Italy. The secret code is 7391. "
    "Madrid is the capital of Spain. The secret code is"
)
RATIOS = (0.25, 0.5, 0.9)
PAIRS = {"StreamingLLMPress": "streaming", "KnormPress": "knorm", "TOVAPress": "tova"}
ADAPTED = {**{name: RATIOS for name in PAIRS}, "SnapKVPress": (0.9,), "ExpectedAttentionPress": (0.5,)}


def uncompressed(model, ids) -> list[torch.Tensor]:
    """Per layer the prefill's keys ``[kv_head, n, head_dim]`` without compression."""
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True).past_key_values
    return [layer.keys[0] for layer in cache.layers]


def kept_by_kvpress(model, ids, press, full: list[torch.Tensor]) -> torch.Tensor:
    """Bool ``[layer, kv_head, n]``: the positions kvpress's own press kept, found by matching each key of
    its compressed cache to the one identical key of the uncompressed prefill ``full`` (compression happens
    after each layer's attention, so the prefill's keys are the same bit for bit)."""
    from transformers import DynamicCache

    with torch.inference_mode(), press(model):
        small = model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True).past_key_values
    plans = []
    for whole, cut in zip(full, small.layers):
        same = (cut.keys[0][:, :, None, :] == whole[:, None, :, :]).all(-1)  # [kv_head, kept, n]
        assert bool((same.sum(-1) == 1).all()), "a kept key matches no position, or several"
        plans.append(same.any(1))
    return torch.stack(plans)


def assert_same_up_to_ties(ours: torch.Tensor, theirs: torch.Tensor, scores: torch.Tensor, rel: float = 1e-6):
    """Plans ``[layer, kv_head, n]`` keep the same count everywhere and the same positions, except where the
    positions swapped score within ``rel`` of the last kept score (a tie, broken by rounding)."""
    assert torch.equal(ours.sum(-1), theirs.sum(-1))
    for layer, head in (ours != theirs).any(-1).nonzero().tolist():
        row = scores[layer, head]
        edge = row[ours[layer, head]].min()
        swapped = row[ours[layer, head] != theirs[layer, head]]
        assert bool(((swapped - edge).abs() <= rel * edge.abs()).all()), (layer, head, swapped, edge)


@pytest.fixture(scope="module")
def setup(embedded):
    model, tok, info = embedded
    ids = tok(TEXT + " " + TEXT, return_tensors="pt").input_ids  # 71 tokens: more than SnapKV's window of 64
    full = uncompressed(model, ids)
    theirs = {
        (name, ratio): kept_by_kvpress(model, ids, getattr(kvpress, name)(compression_ratio=ratio), full)
        for name, ratios in ADAPTED.items()
        for ratio in ratios
    }
    return model, tok, info, ids, theirs


@pytest.mark.embedded
def test_kvscope_strategies_keep_what_kvpress_presses_keep(setup):
    """streaming and tova: the same positions; knorm: the same up to exact ties in key norm (layer 0 gives a
    token the same key norm wherever it stands, RoPE preserving norms: float32 vs float64 rounding decides)."""
    model, tok, info, ids, theirs = setup
    pre = prefill(model, tok, info, ids)
    norms = -torch.stack([k.double().norm(dim=-1) for k in pre.snapshot.keys])
    for press, name in PAIRS.items():
        for ratio in RATIOS:
            ours = make_strategy(name, rounding="floor").keep(pre, ratio)
            if name == "knorm":
                assert_same_up_to_ties(ours, theirs[press, ratio], norms)
            else:
                assert torch.equal(ours, theirs[press, ratio]), (press, ratio)


@pytest.mark.embedded
def test_the_adapter_keeps_exactly_what_kvpress_keeps(setup):
    """kvscope running kvpress's own score on its one recorded prefill keeps the same positions as kvpress."""
    model, tok, info, ids, theirs = setup
    strategies = {name: make_strategy(f"kvpress:{name}") for name in ADAPTED}
    with attached(model, strategies.values()):
        pre = prefill(model, tok, info, ids)
        for name, strategy in strategies.items():
            for ratio in ADAPTED[name]:
                assert torch.equal(strategy.keep(pre, ratio), theirs[name, ratio]), (name, ratio)


@pytest.mark.embedded
def test_compress_with_a_press_generates_as_bench_and_as_kvpress(setup):
    """``ks.compress(model, press)`` and ``ks.compress(model, "kvpress:...", ratio=)``: the greedy tokens of
    bench's path (prefill once, a pruned copy, decoding at true positions) and of kvpress's own generate."""
    model, tok, info, ids, theirs = setup
    steps = 4
    with torch.inference_mode():
        first = int(model(input_ids=ids).logits[0, -1].argmax())
    for name, ratio in (("KnormPress", 0.5), ("SnapKVPress", 0.9)):
        press = getattr(kvpress, name)(compression_ratio=ratio)
        strategy = make_strategy(f"kvpress:{name}")
        with attached(model, [strategy]):
            pre = prefill(model, tok, info, ids)
            keep = strategy.keep(pre, ratio)
        pc = build_cache(model.config, pre, keep)
        want = [first] + decode(model, pc, first, pre.n_positions, steps - 1)
        if name == "KnormPress":  # kvpress's own generate (its cache holds the kept keys alone)
            with torch.inference_mode(), press(model):
                own = model.generate(input_ids=ids, max_new_tokens=steps, do_sample=False)
            assert own[0, ids.shape[1] :].tolist() == want
        forms = [((press,), {})] + ([((f"kvpress:{name}",), {"ratio": ratio})] if name == "KnormPress" else [])
        for args, kw in forms:
            with torch.inference_mode(), ks.compress(model, *args, **kw) as c:
                out = model.generate(input_ids=ids, max_new_tokens=steps, do_sample=False)
            assert out[0, ids.shape[1] :].tolist() == want, (name, kw)
            assert torch.equal(c.stats.keep[0][..., : ids.shape[1]], theirs[name, ratio])
            assert c.stats.label == f"kvpress:{name} ratio={ratio:g}"


def test_bench_takes_presses_with_intervals_and_one_prefill_per_sample(tiny):
    """Rows with intervals for a press, the same kept bytes as kvscope's knorm at floor rounding, the
    prefill reused (one forward from an empty cache per sample), the eviction map and the conventions."""
    model, tok, _ = tiny
    result = ks.bench(
        model, tok, tasks=["passkey"], samples=2, strategies=["knorm", "kvpress:KnormPress"], ratios=[0.5],
        quantize=[], settings={"rounding": "floor"},
    )  # fmt: skip
    rows = {r.config: r for r in result.rows}
    press = rows["kvpress:KnormPress@0.5"]
    cell = press.accuracy["passkey"]
    assert cell.n == 2 and cell.low <= cell.value <= cell.high
    kv = {(o.config, o.sample): o.kv_bytes for o in result.outcomes}
    assert all(kv["kvpress:KnormPress@0.5", s] == kv["knorm@0.5", s] < kv["baseline", s] for s in (0, 1))
    assert result.prefills == 2
    assert "kvpress:KnormPress" in result.maps[0].shares
    assert any("kvpress conventions" in w for w in result.warnings)


def test_bench_cli_with_two_presses(tiny, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["bench", "-m", "tiny", "--task", "passkey", "--samples", "1", "--ratios", "0.5", "--quantize", ""]
    code, _, err = run_cli(
        [*argv, "--strategies", "kvpress:SnapKVPress,kvpress:ExpectedAttentionPress", "-o", str(out)], capsys
    )
    assert code == 0, err
    bench = json.loads((out / "bench.json").read_text())
    names = [r["config"] for r in bench["rows"]]
    assert names == ["baseline", "kvpress:SnapKVPress@0.5", "kvpress:ExpectedAttentionPress@0.5"]


def test_prune_takes_a_press_as_its_strategy(tiny, tmp_path, capsys):
    """ks.compare_pruning (kvscope prune --strategy) with a press: the same kept bytes and (up to key-norm
    ties) the same perplexity as kvscope's knorm at floor rounding, from one prefill; the CLI runs it too."""
    model, tok, _ = tiny
    theirs = ks.compare_pruning(model, tok, TEXT, " The pass key is", "kvpress:KnormPress", 0.5, repeats=0)
    ours = ks.compare_pruning(model, tok, TEXT, " The pass key is", "knorm", 0.5, repeats=0, rounding="floor")
    assert theirs.pruned.kv_bytes == ours.pruned.kv_bytes < theirs.baseline.kv_bytes
    # close, not equal: exact key-norm ties (a token repeated in layer 0, RoPE keeps norms) fall either way
    assert theirs.pruned.ppl == pytest.approx(ours.pruned.ppl, rel=1e-3) and theirs.prefills == 1
    assert theirs.pruned.ppl != pytest.approx(theirs.baseline.ppl, rel=1e-6)  # the press did evict
    argv = ["prune", "-m", "tiny", "--strategy", "kvpress:KnormPress", "--ratio", "0.5", "--repeats", "1"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err


def test_presses_kvscope_cannot_run_are_refused_in_one_line(tiny, capsys):
    cases = {
        "kvpress:AdaKVPress": "kvpress:AdaKVPress does not rank tokens by a score",
        "kvpress:PyramidKVPress": "kvpress:PyramidKVPress compresses through its own compress",
        "kvpress:ObservedAttentionPress": "reads the attention matrix (eager attention)",
        "kvpress:NoSuchPress": "unknown kvpress press 'NoSuchPress'",
    }
    for name, fragment in cases.items():
        with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            make_strategy(name)
    code, _, err = run_cli(["bench", "-m", "tiny", "--strategies", "kvpress:AdaKVPress"], capsys)
    assert_one_line_error(err, code, 2)
    assert "kvpress:AdaKVPress" in err


def test_settings_ratio_and_rounding_of_a_press():
    s = make_strategy("kvpress:SnapKVPress", **parse_settings("kvpress:SnapKVPress", ["window_size=16"]))
    assert s.press.window_size == 16 and s.label == "kvpress:SnapKVPress(window_size=16)"
    assert s.settings() == {"press": "SnapKVPress", "window_size": 16, "kernel_size": 5, "rounding": "floor"}
    assert (s.budget(490, 0.9), s.budget(3, 0.9), s.budget(10, 0.0)) == (48, 1, 10)  # kvpress: floor, >= 1
    assert make_strategy("knorm", rounding="floor").budget(3, 0.9) == 0  # kvscope's floor may keep none
    for settings, fragment in (
        ({"compression_ratio": 0.5}, "not compression_ratio"),
        ({"rounding": "ceil"}, "rounding is kvpress's own"),
        ({"window": 3}, "has no setting window"),
    ):
        with pytest.raises(UsageError, match=fragment):
            make_strategy("kvpress:SnapKVPress", **settings)
    with pytest.raises(UsageError, match="disagree"):
        ks.compress(object(), kvpress.KnormPress(compression_ratio=0.5), ratio=0.25)
    with pytest.raises(UsageError, match="budget: kvpress:KnormPress scores the prompt as a whole"):
        ks.compress(object(), "kvpress:KnormPress", budget=16)


def test_keep_without_a_recorded_prefill_says_what_to_do(tiny):
    model, tok, info = tiny
    pre = prefill(model, tok, info, tok(TEXT, return_tensors="pt").input_ids)
    s = make_strategy("kvpress:KnormPress")
    with pytest.raises(UsageError, match="run it through kvscope bench or ks.compress"):
        s.keep(pre, 0.5)
    with attached(model, [s]), pytest.raises(KvscopeError, match="no prefill of these"):
        s.keep(pre, 0.5)  # the prefill ran before the recorder was attached


@pytest.mark.embedded
def test_the_readme_press_example_runs_as_written(setup):
    """The README's kvpress example runs with the model and a left-padded batch as in the section above it;
    each row of such a batch keeps what its prompt keeps alone."""
    model, tok, _, _, _ = setup
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### kvpress presses as configurations", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    side, tok.padding_side = tok.padding_side, "left"
    try:
        inputs = tok(
            [  # 26 and 18 tokens: at ratio 0.5 the scores choose beyond ExpectedAttention's 4 protected sinks
                "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid. "
                "The capital of Germany is",
                "Count to ten: one, two, three, four, five, six, seven,",
            ],
            return_tensors="pt",
            padding=True,
        )
        scope = {"ks": ks, "model": model, "inputs": inputs}
        with torch.inference_mode():
            exec(compile(code, "README.md", "exec"), scope)
            # each left-padded row keeps what that prompt keeps alone (its own hidden states and positions)
            press = kvpress.ExpectedAttentionPress(compression_ratio=0.5)
            with ks.compress(model, press) as batch:
                model.generate(**inputs, max_new_tokens=2, do_sample=False)
            for row, ids in enumerate(inputs.input_ids):
                real = ids[inputs.attention_mask[row].bool()][None]
                with ks.compress(model, press) as alone:
                    model.generate(input_ids=real, max_new_tokens=2, do_sample=False)
                assert torch.equal(batch.stats.keep[row], alone.stats.keep[0]), row
    finally:
        tok.padding_side = side
