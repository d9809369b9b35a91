"""The embedded SmolLM2-135M-Instruct: facts, capture parity, and the CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch

from kvscope.capture.capturing import run_capture
from kvscope.snapshot import KVSnapshot
from tests.helpers import run_cli

pytestmark = pytest.mark.embedded


def test_embedded_facts(embedded):
    info = embedded.info
    assert (info.architecture, info.layers, info.q_heads, info.kv_heads, info.head_dim) == ("llama", 30, 9, 3, 64)
    assert info.group_size == 3 and info.max_positions == 8192 and info.dtype == "float32"
    assert info.kv_bytes_per_token == 2 * 30 * 3 * 64 * 4 == 46080
    assert 134_000_000 < info.parameters < 135_000_000  # 134.5M with tied embeddings counted once


def test_embedded_capture_parity_and_attention(embedded):
    ids = embedded.tokenizer(
        "Paris is the capital of France, and Rome is the capital of", return_tensors="pt"
    ).input_ids
    with torch.inference_mode():
        plain = embedded.model(ids).logits[0]
    res = run_capture(embedded.model, ids, embedded.tokenizer, info=embedded.info, attention=True, keep_logits=True)
    torch.testing.assert_close(res.logits, plain, atol=1e-4, rtol=1e-4)
    n = ids.shape[1]
    snap = res.snapshot
    assert snap.keys[29].shape == (3, n, 64)
    torch.testing.assert_close(snap.attention_received.sum(-1), torch.full((30, 3), float(n * 3)), rtol=1e-5, atol=1e-3)
    assert embedded.tokenizer.decode(plain[-1].argmax()).strip() == "Italy"


def test_kvscope_capture_end_to_end(tmp_path, capsys):
    prompt = tmp_path / "p.txt"
    prompt.write_text("The KV cache stores keys and values.", encoding="utf-8")
    code, out, err = run_cli(
        ["capture", "--prompt-file", str(prompt), "--out", str(tmp_path / "e.kvs"), "--attention", "--json"], capsys
    )
    assert code == 0, err
    snap = KVSnapshot.load(tmp_path / "e.kvs")
    assert json.loads(out)["tokens"] == snap.n_positions == len(snap.tokens)
    assert snap.info.layers == 30 and snap.keys[0].shape[0] == 3 and snap.has_attention
    assert "".join(snap.tokens) == "The KV cache stores keys and values."
