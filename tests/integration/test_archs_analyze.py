"""Analyze on sliding-window models (Gemma 2/3's alternate layers, Mistral's every layer): the head
specialization figure claims a match with capture only for layers it recomputed, shows a layer it could
recompute, and the headline KV bytes count what the cache holds."""

from __future__ import annotations

import math

import pytest
import torch

from kvscope.analyze.attention_spec import attention_spec, full_layers, parity
from kvscope.analyze.figure_base import FigureData
from kvscope.analyze.figure_heads import head_specialization as heads_figure
from kvscope.analyze.head_specialization import head_specialization
from kvscope.analyze.metrics import headline
from kvscope.archs import layer_windows
from kvscope.capture.capturing import capture
from kvscope.models import byte_tokenizer, describe
from tests.families import WINDOW, build

PROMPT = "The quick brown fox jumps over the lazy dog near the river."  # 59 tokens, window 8


def analyzed(family: str):
    torch.set_num_threads(1)
    model = build(family)
    snap = capture(model, byte_tokenizer(), PROMPT, info=describe(model, family), attention=True, queries=True)
    spec = attention_spec(snap, model)
    hs = head_specialization(snap, snap.n_layers // 2, spec=spec)  # analyze's default layer
    title = heads_figure(FigureData({"heads": hs}, {})).axes[0].get_title()
    return snap, spec, hs, title


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_alternating_windows_show_a_full_layer_and_check_it(family):
    snap, spec, hs, title = analyzed(family)
    full = full_layers(snap)
    assert full == [1, 3] and hs.skipped_layers == [0, 2] and hs.requested == 2
    assert hs.layer == 1 and not math.isnan(hs.lookback[1].sum())  # the scatter has points
    checked = max(parity(snap, layer, spec) for layer in full)  # the claim, checked independently
    assert abs(hs.parity - checked) < 1e-6 and hs.parity < 1e-5
    assert title.startswith("layer 1:") and f"matches capture to {hs.parity:.1e}" in title
    assert "layer 2 keeps a sliding window" in title


def test_every_layer_windowed_claims_nothing():
    snap, _, hs, title = analyzed("mistral")
    assert full_layers(snap) == [] and hs.layer is None and math.isnan(hs.parity)
    assert "matches" not in title and "nothing checked" in title


def test_quantization_says_why_no_output_error_on_an_all_windowed_model():
    from kvscope.analyze.quantization import quantization_error

    model = build("mistral")
    snap = capture(model, byte_tokenizer(), PROMPT, info=describe(model, "mistral"), queries=True)
    q = quantization_error(snap, bits=(4,), model=None)
    assert q.output_layers == [] and "sliding window" in q.notes["output"]


@pytest.mark.parametrize("family", ["gemma2", "mistral", "llama3"])
def test_headline_bytes_count_what_the_cache_holds(family):
    model = build(family)
    snap = capture(model, byte_tokenizer(), PROMPT, info=describe(model, family))
    n, cfg = snap.n_positions, model.config
    held = sum(w - 1 if w else n for w in layer_windows(cfg))  # a sliding layer holds window - 1
    assert held == {"gemma2": 2 * (WINDOW - 1) + 2 * n, "mistral": 2 * (WINDOW - 1), "llama3": 2 * n}[family]
    per_position = 2 * cfg.num_key_value_heads * cfg.head_dim * 4  # K and V, float32
    assert headline(snap, {})["kv_cache_bytes"] == held * per_position
