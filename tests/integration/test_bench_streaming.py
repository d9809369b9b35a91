"""The decode-time task (``kvscope bench --task streaming``, StreamingLLM Fig. 3) on the tiny model: a budget
at least as long as the text changes nothing, the cache never holds more than the budget, the dense line is
the model's own full-sequence NLL, window and StreamingLLM differ only by the sinks, and the files exist."""

import json

import numpy as np
import pytest
import torch

from kvscope.bench import streaming as S

T = 24  # tokens per stream
STREAMS = 2


@pytest.fixture(scope="module")
def ids(tiny):
    return S.stream_ids(tiny[1], STREAMS, T)


@pytest.fixture(scope="module")
def dense(tiny, ids):
    """The dense line as the task computes it (one forward) and one token per step (``prefill=1, chunk=1``)."""
    return S.run_config(tiny[0], ids, "dense", None), S.run_config(tiny[0], ids, "dense", None, prefill=1, chunk=1)


def _full_nll(model, ids):
    """Per-position NLL ``[stream, T - 1]`` from one forward over the whole sequence, no cache."""
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits.float(), -1)
    return -logp[:, :-1].gather(2, ids[:, 1:, None])[..., 0].double().numpy()


def test_the_streams_are_the_built_in_texts_in_rotated_orders(tiny, ids):
    from kvscope.bench.texts import TEXTS

    assert ids.shape == (STREAMS, T)
    starts = [tiny[1].decode(row) for row in ids]
    assert [TEXTS[i][2][:10] in starts[i] for i in range(STREAMS)] == [True] * STREAMS
    assert not torch.equal(ids[0], ids[1])


def test_the_dense_line_is_the_models_own_full_sequence_nll(tiny, ids, dense):
    want = _full_nll(tiny[0], ids)
    whole, stepwise = dense  # stepwise: the loop every compressed line uses
    assert whole.nll.shape == (STREAMS, T - 1)
    np.testing.assert_allclose(whole.nll, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(stepwise.nll, want, rtol=0, atol=1e-5)
    assert want.std() > 0.01  # not a constant that would match anything


# h2o and tova read each decoded query's attention, which ks.compress computes with an explicit softmax
# (kvscope.compress.attention.attend_with_probs) rather than SDPA: the same numbers to float32 rounding.
ROUNDING = {"h2o": 1e-6, "tova": 1e-6}


@pytest.mark.slow
@pytest.mark.parametrize("label", list(S.CONFIGS))
def test_a_budget_as_long_as_the_text_equals_dense_exactly(tiny, ids, dense, label):
    run = S.run_config(tiny[0], ids, label, T - 1, prefill=1, chunk=1)  # the last token is never fed: T - 1 at most
    assert run.held == list(range(1, T))  # nothing was ever evicted
    if label in ROUNDING:
        np.testing.assert_allclose(run.nll, dense[1].nll, rtol=0, atol=ROUNDING[label])
    else:
        assert np.array_equal(run.nll, dense[1].nll), (label, np.abs(run.nll - dense[1].nll).max())
    chunked = S.run_config(tiny[0], ids, label, T - 1, prefill=1)  # many tokens per forward: float rounding
    assert chunked.held == run.held
    np.testing.assert_allclose(chunked.nll, dense[1].nll, rtol=0, atol=1e-6)


@pytest.mark.parametrize("label", list(S.CONFIGS))
def test_chunks_equal_one_token_per_forward(tiny, ids, label):
    """The task's chunked feeding (5 tokens per forward, cut at the map's steps) against one token per
    forward: the same NLL to float rounding, the same steps held and the same eviction map."""
    budget, steps = 6, [5, 9, 16, 22]
    one = S.run_config(tiny[0], ids, label, budget, steps, chunk=1)
    many = S.run_config(tiny[0], ids, label, budget, steps, chunk=5)
    assert one.held == many.held == [budget] * (T - 1)
    if label == "knorm":  # two copies of a byte tie on layer-0 key norm (RoPE keeps it); float rounding, which
        return  # differs between a chunk and one token, picks the copy evicted (test_compress_chunked: no ties)
    assert np.abs(one.nll - many.nll).max() < 1e-5, (label, np.abs(one.nll - many.nll).max())
    assert np.array_equal(one.map["held"], many.map["held"])


def test_the_task_path_with_a_long_budget_equals_dense_exactly(tiny, ids, dense):
    """The task's own path: the first min(budget, T) tokens in one forward, here the whole text."""
    assert np.array_equal(S.run_config(tiny[0], ids, "window", T + 7).nll, dense[0].nll)


@pytest.mark.slow
@pytest.mark.parametrize("label", list(S.CONFIGS))
def test_the_cache_never_holds_more_than_the_budget(tiny, ids, dense, label):
    budget = 9
    stepwise = S.run_config(tiny[0], ids, label, budget, prefill=1)
    assert stepwise.held == [min(s + 1, budget) for s in range(T - 1)]
    default = S.run_config(tiny[0], ids, label, budget)  # the first `budget` tokens in one forward
    assert default.held == [budget] * (T - 1)
    if label != "knorm":  # knorm: layer 0 keys of a repeated token tie exactly (RoPE keeps the norm), so
        # float rounding of one forward against many decides which of them goes; the rest agrees
        np.testing.assert_allclose(default.nll, stepwise.nll, rtol=0, atol=1e-5)
    np.testing.assert_allclose(default.nll[:, : budget - 1], dense[0].nll[:, : budget - 1], rtol=0, atol=1e-5)
    assert np.abs(default.nll[:, budget:] - dense[0].nll[:, budget:]).max() > 1e-4  # eviction changes the rest


def test_window_and_streaming_differ_only_by_the_sinks(tiny, ids):
    budget, step = 10, 20  # after the forward that fed position 20
    held = {}
    for label in ("window", "streaming"):
        run = S.run_config(tiny[0], ids, label, budget, map_steps=[step])
        held[label] = set(np.flatnonzero(run.map["held"][0]).tolist())
        assert set(np.unique(run.map["held"][0])) <= {0.0, 1.0}  # every layer and kv_head agrees
    assert held["window"] == set(range(step - budget + 1, step + 1))  # 11..20: the most recent 10
    assert held["streaming"] == {0, 1, 2, 3} | set(range(step - budget + 5, step + 1))  # 4 sinks + 15..20


def test_the_result_rows_json_and_figures(tiny, tmp_path):
    model, tok, _ = tiny
    result = S.bench_streaming(
        model, tok, budgets=[8, 16], strategies=["window", "h2o"], samples=STREAMS, context_tokens=T
    )
    configs = ["dense", "window@8", "h2o@8", "window@16", "h2o@16"]
    assert [r.config for r in result.table] == configs
    dense = result.runs[0].nll
    row = result.row("h2o@8")
    own = result.run("h2o@8").nll[:, 8:]
    assert row.predictions == T - 1 - 8 and row.max_held == 8
    assert row.log_ppl[0] == pytest.approx(own.mean()) and row.log_ppl[1] <= row.log_ppl[0] <= row.log_ppl[2]
    assert row.delta[0] == pytest.approx((own - dense[:, 8:]).mean()) and row.ppl_ratio == pytest.approx(
        np.exp(row.delta[0])
    )
    assert result.row("dense").delta == (0.0, 0.0, 0.0)
    out = tmp_path / "out"
    names = {p.name for p in result.save(out)}
    assert names == {"bench.json", "samples.jsonl", "streaming_ppl.png", "streaming_map.png", "report.html"}
    doc = json.loads((out / "bench.json").read_text())
    assert [r["config"] for r in doc["rows"]] == configs and doc["task"] == "streaming"
    assert doc["rows"][2]["log_ppl"] == pytest.approx(list(row.log_ppl))
    assert len(doc["curves"]["window@16"]) == T - 1
    assert [m["config"] for m in doc["maps"]] == ["window@8", "h2o@8"]
    assert doc["maps"][0]["steps"][0] == 7 and len(doc["maps"][0]["held"][0]) == T
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == len(configs) * STREAMS and len(json.loads(lines[0])["nll"]) == T - 1
    for name in ("streaming_ppl.png", "streaming_map.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert all(c in page for c in configs) and "data:image/png;base64," in page
    assert "h2o@8" in repr(result) or "window@8" in repr(result)
    assert "<table>" in result._repr_html_()


@pytest.mark.slow
def test_the_cli_runs_the_task_alone(tmp_path, capsys):
    from tests.helpers import run_cli

    out = tmp_path / "out"
    argv = ["bench", "-m", "tiny", "--task", "streaming", "--budgets", "8", "--strategies", "streaming"]
    code, stdout, err = run_cli([*argv, "--samples", "2", "--context-tokens", "24", "-o", str(out), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert [r["config"] for r in doc["rows"]] == ["dense", "streaming@8"] and doc["settings"]["samples"] == 2
    assert "curves" not in doc and (out / "bench.json").exists() and (out / "report.html").exists()
