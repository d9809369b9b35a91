"""The README's API example, run on the embedded model: ``import kvscope as ks`` and a user's own model."""

from __future__ import annotations

import json

import pytest

import kvscope as ks
from tests.helpers import run_cli

pytestmark = pytest.mark.embedded
TEXT = "The capital of France is Paris. The capital of Germany is Berlin."
PROMPT = "Alice keeps her spare key under the blue flowerpot by the door. Where is the spare key?"
CONTINUATION = " It is under the blue flowerpot."


def test_capture_takes_a_users_model_and_tokenizer(embedded):
    model, tokenizer, _ = embedded  # any loaded HF causal LM + tokenizer
    snap = ks.capture(model, tokenizer, "text", attention=True)
    assert len(snap.keys) == 30 and snap.keys[0].shape[0] == 3 and snap.keys[0].shape[2] == 64
    assert snap.attention_received is not None and snap.attention_received.shape[:2] == (30, 3)


def test_analyze_in_memory_then_save_writes_the_clis_files(embedded, tmp_path, capsys):
    from matplotlib.figure import Figure

    model, tokenizer, _ = embedded
    snap = ks.capture(model, tokenizer, TEXT, attention=True)
    result = ks.analyze(snap)  # in memory; no files unless asked
    assert list(tmp_path.iterdir()) == []
    assert isinstance(result.figures["low_importance_tokens"], Figure)
    assert result.metrics and result.verdict
    result.save(tmp_path / "api")
    code, _, err = run_cli(
        ["analyze", "--snapshot", str(snap.save(tmp_path / "s.kvs")), "--out", str(tmp_path / "cli")], capsys
    )
    assert code == 0, err
    api, cli = tmp_path / "api", tmp_path / "cli"
    assert sorted(p.name for p in api.iterdir()) == sorted(p.name for p in cli.iterdir())
    assert json.loads((api / "metrics.json").read_text()) == json.loads((cli / "metrics.json").read_text())


def test_compare_pruning(embedded):
    model, tokenizer, _ = embedded
    # repeats=1, as in the README: the latencies' repeats are not what this test checks.
    lab = ks.compare_pruning(model, tokenizer, PROMPT, CONTINUATION, strategy="snapkv", ratio=0.5, repeats=1)
    assert "PruneResult" in repr(lab) and len(repr(lab)) < 400 and "<table" in lab._repr_html_()


def test_bench(embedded):
    model, tokenizer, _ = embedded
    # The call, narrowed to one configuration beside the baseline and 6 samples so that it runs in seconds.
    bench = ks.bench(
        model,
        tokenizer,
        tasks=["passkey"],
        samples=6,
        context_tokens=300,
        strategies=["snapkv"],
        ratios=[0.5],
        quantize=[],
    )
    assert "BenchResult" in repr(bench) and "<table" in bench._repr_html_()
    assert [r.config for r in bench.rows] == ["baseline", "snapkv@0.5"]
    baseline = bench.rows[0].accuracy["passkey"]
    assert baseline.n == 6 and baseline.value >= 0.6  # the model finds a pass key in 300 tokens almost always
