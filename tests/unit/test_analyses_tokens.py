"""Token typing, sink detection, importance proxies and head features on planted snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvscope.analyses.head_specialization import head_specialization
from kvscope.analyses.importance import importance
from kvscope.analyses.sinks import detect_sinks, uniform_share
from kvscope.analyses.token_table import token_table
from kvscope.errors import KvscopeError
from kvscope.tokens import token_types
from tests.unit.test_analyses_synth import causal_attention, make_snapshot, random_snapshot


def test_token_types_cover_every_category():
    toks = ["<s>", "The", " cat", " Alice", " paid", " 42", ".", " She", "\n", " un", "believ", "able",
            " Paris", "!", " and"]
    special = [True] + [False] * 14
    assert token_types(toks, special) == [
        "special", "stopword", "other", "proper_noun", "other", "number", "punctuation", "stopword",
        "whitespace", "stopword", "subword", "subword", "proper_noun", "punctuation", "stopword"]


def test_sentence_initial_capital_is_not_a_proper_noun():
    assert token_types(["Hello", " world", ".", " Today", " Bob"]) == [
        "other", "other", "punctuation", "other", "proper_noun"]


def test_uniform_share_golden():
    np.testing.assert_allclose(uniform_share(3), [(1 + 1 / 2 + 1 / 3) / 3, (1 / 2 + 1 / 3) / 2, 1 / 3])


def _sink_snapshot(n=40, layers=3):
    """Every query puts almost all attention on position 0 (a planted sink)."""
    keys = [torch.zeros(1, n, 4) for _ in range(layers)]
    for k in keys:
        k[0, 0, 0] = 30.0
    values = [torch.ones(1, n, 4) for _ in range(layers)]
    snap = make_snapshot(keys, values, q_heads=2)
    for l in range(layers):
        snap.queries[l][:] = 0.0
        snap.queries[l][:, :, 0] = 1.0
        snap.attention_received[l] = causal_attention(snap.queries[l], keys[l]).sum(1).reshape(1, 2, n).sum(1)
    return snap


def test_planted_sink_is_detected_and_flagged_in_the_table():
    snap = _sink_snapshot()
    sinks = detect_sinks(snap)
    assert sinks.detected and sinks.positions.tolist() == [0]
    table = token_table(snap, sinks)
    assert table.sink.tolist() == [True] + [False] * 39
    assert table.attention[0] > 0.9


def test_no_attention_means_no_detection():
    snap = random_snapshot(attention=False)
    assert not detect_sinks(snap).detected
    assert np.isnan(token_table(snap, detect_sinks(snap)).attention).all()


def test_short_prompt_flags_no_sink_from_uniform_attention():
    snap = random_snapshot(n=3)
    assert detect_sinks(snap).positions.size == 0


def test_importance_signs_follow_planted_norms():
    # attention goes to the low-key-norm position: key_norm proxy (-||k||) must correlate positively
    n = 12
    k = torch.zeros(1, n, 2)
    k[0, :, 0] = torch.linspace(1.0, 3.0, n)   # key norms increase with position
    v = torch.ones(1, n, 2)
    snap = make_snapshot([k], [v], q_heads=1)
    snap.queries[0][:] = 0.0
    snap.queries[0][:, :, 0] = -4.0            # q.k = -4 * norm -> smaller norm, more attention
    snap.attention_received[0] = causal_attention(snap.queries[0], k).sum(1)
    imp = importance(snap)
    assert imp.layer_spearman["key_norm"][0] > 0.9
    assert imp.layer_spearman["magnitude"][0] < -0.9
    assert imp.holds is False and "inverted" in imp.verdict


def test_importance_against_ground_truth_and_mismatch():
    snap = random_snapshot(n=10)
    truth = np.nanmean(snap.mean_attention().numpy(), axis=(0, 1))
    imp = importance(snap, -truth)  # delta_loglik < 0 = needed
    assert imp.ground_truth["attention"] == pytest.approx(1.0)
    bad = importance(snap, np.zeros(7))
    assert bad.ground_truth == {} and "7 tokens" in bad.ground_truth_note


def test_importance_needs_attention():
    with pytest.raises(KvscopeError):
        importance(random_snapshot(attention=False))


def test_head_features_golden_on_a_sink_head():
    hs = head_specialization(_sink_snapshot(n=10, layers=1), 0)
    assert hs.parity < 1e-6
    assert hs.kv_head.tolist() == [0, 0]
    np.testing.assert_allclose(hs.first_share, 1.0, atol=1e-5)  # exp(-15) leaks
    np.testing.assert_allclose(hs.lookback, np.arange(10).mean(), atol=1e-4)  # query i looks back i
    np.testing.assert_allclose(hs.entropy, 0.0, atol=1e-4)


def test_head_features_need_queries():
    with pytest.raises(KvscopeError):
        head_specialization(random_snapshot(queries=False), 0)
