"""Figure fixes of issue 23 item 13: low_importance_tokens compares attention on a length-fair scale,
kv_cache_layers' tile labels never cover the first (sink) rows, and a many-prompt run gives the right
reason for skipping the weights figure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kvscope.analyze.figure_base import FigureData
from kvscope.analyze.figure_registry import missing_needs
from kvscope.analyze.figure_tokens import low_importance_tokens, position_relative
from kvscope.analyze.registry import AnalysisOptions, run_all
from tests.helpers import random_snapshot


def test_position_relative_is_one_for_attention_that_depends_only_on_position():
    ramp = np.linspace(0.01, 1.0, 200) ** 3  # per seeing query: the last tokens get the most
    ratio, w = position_relative(ramp)
    assert w == 10
    inner = slice(w, 200 - w)  # a symmetric window: the median of a monotone run is its centre
    assert np.allclose(ratio[inner], 1.0)
    assert ratio[-1] < 1.2 and ramp[-1] / np.median(ramp) > 7  # the last token is ordinary for its position


def test_position_relative_golden_with_a_spike():
    x = np.ones(11)
    x[5] = 4.0
    ratio, w = position_relative(x)
    assert w == 2 and ratio[5] == pytest.approx(4.0) and np.allclose(np.delete(ratio, 5), 1.0)


def _tokens_with_recency(n: int = 60):
    """A table whose lowest-magnitude tokens are the last ones, and whose attention rises with position."""
    snap = random_snapshot(layers=2, n=n, d=8, seed=4)
    ctx = run_all(snap, AnalysisOptions(layer=0), only=["sinks", "tokens"])
    t = ctx.results["tokens"]
    attention = np.linspace(0.01, 0.2, n) * (1 + 0.05 * np.sin(np.arange(n)))
    lowest = np.arange(n - 1, n - 1 - t.lowest.size, -1)
    return dataclasses.replace(t, attention=attention, lowest=lowest, sink=np.zeros(n, dtype=bool))


def test_low_importance_bars_do_not_favour_the_last_tokens():
    t = _tokens_with_recency()
    fig = low_importance_tokens(FigureData({"tokens": t}, {}))
    ax = fig.axes[1]
    heights = np.array([b.get_height() for b in ax.patches])
    expected, _ = position_relative(t.attention)
    assert np.allclose(heights, expected[t.lowest])
    assert heights.max() < 1.3  # raw, the last tokens would stand at ~2x the median token
    assert t.attention[t.lowest].min() > 1.5 * np.median(t.attention)
    assert "within" in ax.get_ylabel()


def test_kv_cache_layer_labels_leave_the_sink_row_visible():
    from kvscope.analyze.figure_layers import kv_cache_layers

    snap = random_snapshot(layers=8, kv_heads=2, n=120, d=16, seed=6)
    ctx = run_all(snap, AnalysisOptions(layer=0), only=["cache_maps"])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = kv_cache_layers(FigureData(ctx.results, {}))
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:2]:
        labels = [t for t in ax.texts if t.get_text()[:1] in "KV"]
        assert len(labels) == 8
        img_h = ax.images[0].get_array().shape[0]
        tile_h = ctx.results["cache_maps"].key[0].shape[0]
        for tile_top in range(0, img_h, tile_h + 3):
            first_rows = ax.transData.transform([[0, tile_top - 0.5], [0, tile_top + 2.5]])[:, 1]
            for label in labels:
                box = label.get_window_extent(renderer)
                overlap = min(box.y1, first_rows.max()) - max(box.y0, first_rows.min())
                assert overlap <= 0, (label.get_text(), tile_top)


def test_many_prompt_skip_reason_for_weights_is_about_weights():
    why = missing_needs("weight_magnitude_distribution", FigureData({}, {}), {}, many=True)
    assert "same for every prompt" in why and "tokens" not in why
    assert "tokens" in missing_needs("token_magnitudes", FigureData({}, {}), {}, many=True)
    assert "tokens" not in missing_needs("kv_value_distribution", FigureData({}, {}), {}, many=True)
