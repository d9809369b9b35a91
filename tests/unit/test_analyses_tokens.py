"""Token typing, sink detection, importance proxies and head features on planted snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvscope.analyze.head_specialization import head_specialization
from kvscope.analyze.importance import importance
from kvscope.analyze.sinks import detect_sinks, uniform_share
from kvscope.analyze.token_table import token_table
from kvscope.errors import KvscopeError
from kvscope.tokens import token_types
from tests.helpers import causal_attention, make_snapshot, random_snapshot


def test_token_types_cover_every_category():
    toks = [
        "<s>",
        "The",
        " cat",
        " Alice",
        " paid",
        " 42",
        ".",
        " She",
        "\n",
        " un",
        "believ",
        "able",
        " Paris",
        "!",
        " and",
    ]
    special = [True] + [False] * 14
    assert token_types(toks, special) == [
        "special",
        "stopword",
        "other",
        "proper_noun",
        "other",
        "number",
        "punctuation",
        "stopword",
        "whitespace",
        "other",
        "other",
        "other",
        "proper_noun",
        "punctuation",
        "stopword",
    ]


def test_token_types_are_per_word_not_per_piece():
    # " Am" alone would be a stopword; as the first piece of " Amara" it is part of a proper noun
    toks = ["Then", " Am", "ara", " came", " in", "."]
    assert token_types(toks) == ["stopword", "proper_noun", "proper_noun", "other", "stopword", "punctuation"]


def test_own_stopword_list_replaces_scikit_learn():
    import sys

    from kvscope.tokens import STOPWORDS

    assert {"the", "and", "of", "am", "she"} <= STOPWORDS and "paris" not in STOPWORDS
    assert "sklearn" not in sys.modules


def test_sentence_initial_capital_is_not_a_proper_noun():
    assert token_types(["Hello", " world", ".", " Today", " Bob"]) == [
        "other",
        "other",
        "punctuation",
        "other",
        "proper_noun",
    ]


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


def test_importance_against_ground_truth_names_it_as_reference():
    snap = random_snapshot(n=10)
    truth = np.nanmean(snap.mean_attention().numpy(), axis=(0, 1))
    imp = importance(snap, -truth)  # delta_loglik < 0 = needed
    assert imp.reference == "leave_one_out" and "leave-one-out" in imp.verdict
    assert imp.partial["leave_one_out"]["attention"] == pytest.approx(1.0)
    bad = importance(snap, np.zeros(7))
    assert bad.reference == "attention" and "7 tokens" in bad.ground_truth_note


def test_position_controlled_verdict_is_near_zero_when_attention_depends_only_on_position():
    # attention received falls with position; the proxy (random norms) does not depend on position
    snap = random_snapshot(layers=2, kv_heads=1, n=300, d=8, seed=3)
    ramp = torch.linspace(1.0, 0.1, 300)
    noise = 1 + 0.2 * torch.rand(300, generator=torch.Generator().manual_seed(9))  # independent of the proxy
    snap.attention_received = (ramp * noise * snap.attention_counts.float()).reshape(2, 1, 300)
    imp = importance(snap)
    assert abs(imp.rho) < 0.15 and imp.reference == "attention"
    # a proxy that tracks position correlates raw, but not once position is controlled for
    k = snap.keys[0].clone()
    snap.keys = [k * ramp[None, :, None] * 10 for _ in range(2)]
    imp = importance(snap)
    assert imp.raw["attention"]["magnitude"] > 0.5 and abs(imp.partial["attention"]["magnitude"]) < 0.3


def test_references_that_disagree_are_reported():
    snap = random_snapshot(layers=1, kv_heads=1, n=60, d=8, seed=5)
    mag = np.nanmean(__import__("kvscope.analyze.importance", fromlist=["x"]).proxies(snap)["magnitude"], axis=(0, 1))
    imp = importance(snap, -mag)  # leave-one-out agrees perfectly with magnitude
    from kvscope.analyze.verdict import classify, token_interval

    assert imp.rho > 0.9 and imp.reference == "leave_one_out" and imp.kind == "holds"
    rho = imp.partial["attention"]["magnitude"]
    assert imp.disagree == (classify(rho, *token_interval(rho, 60)) != "holds")
    assert ("disagree" in imp.verdict) == imp.disagree


def test_importance_needs_attention():
    with pytest.raises(KvscopeError):
        importance(random_snapshot(attention=False))


def test_lookback_ignores_the_sink_and_sink_share_is_its_own_axis():
    from kvscope.analyze.head_specialization import pattern_features

    n = 12
    a = torch.zeros(n, n)
    a[0, 0] = a[1, 0] = 1.0
    for i in range(2, n):
        a[i, 0] = a[i, i - 1] = 0.5  # half on the sink, half on the previous token
    look_sum, look_n, sink_sum, _, eligible = pattern_features(a, [0])
    assert look_sum / look_n == pytest.approx(1.0)  # measured on the sink too, it would grow with i
    assert sink_sum / eligible == pytest.approx(0.5)


def test_head_features_on_a_sink_head_every_layer():
    hs = head_specialization(_sink_snapshot(n=10, layers=2), 1)
    assert hs.parity < 1e-6 and hs.lookback.shape == (2, 2)
    assert hs.kv_head.tolist() == [0, 0]
    np.testing.assert_allclose(hs.sink_share, 1.0, atol=1e-5)  # exp(-15) leaks
    np.testing.assert_allclose(hs.entropy, 0.0, atol=1e-4)


def test_sink_needs_a_majority_of_layers():
    snap = _sink_snapshot(n=40, layers=3)
    snap.attention_received[1] = snap.attention_counts[1].float() / 40  # uniform: no sink in layers 1, 2
    snap.attention_received[2] = snap.attention_counts[2].float() / 40
    sinks = detect_sinks(snap)
    assert sinks.layer_flags[0, 0] and not sinks.layer_flags[1:, 0].any()
    assert sinks.positions.tolist() == []  # one layer of three is not a majority


def test_head_features_need_queries():
    with pytest.raises(KvscopeError):
        head_specialization(random_snapshot(queries=False), 0)


def test_lowest_and_highest_rankings_are_the_ends_of_magnitude():
    snap = random_snapshot(layers=2, kv_heads=2, n=30, d=8, seed=4)
    table = token_table(snap, detect_sinks(snap), n_rank=5)
    rest = np.setdiff1d(np.arange(30), np.r_[table.lowest, table.highest])
    assert table.magnitude[table.lowest].max() <= table.magnitude[rest].min()
    assert table.magnitude[table.highest].min() >= table.magnitude[rest].max()
    assert table.magnitude[table.lowest[0]] == table.magnitude.min()
