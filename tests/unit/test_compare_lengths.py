"""``compare`` of two lengths says so, compares length-matched statistics and shows a noise scale (the
spread between the halves of one prompt), so a difference can be read against it (issue 23 item 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvscope.analyze.comparison import compare, first_positions
from kvscope.analyze.layer_stats import layer_stats
from tests.helpers import make_snapshot


def _growing(n: int = 185, seed: int = 0):
    """Keys and values whose scale grows with position: a longer cut of the same text has a larger std."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0.5, 3.0, n)[None, :, None]
    keys = [torch.randn(2, n, 16, generator=gen) * ramp for _ in range(3)]
    values = [torch.randn(2, n, 16, generator=gen) * ramp for _ in range(3)]
    return make_snapshot(keys, values, seed=seed)


def test_the_same_text_cut_at_two_lengths_differs_by_nothing_once_matched():
    long = _growing()
    short = first_positions(long, 0, 85)
    result = compare(short, long)
    m = result.metrics
    assert "differ (85 vs 185 tokens)" in m["summary"]["lengths"] and m["matched_positions"] == 85
    for k in ("std_k", "std_v", "mean_abs_k", "mean_abs_v"):
        assert np.allclose(m["difference"][k], 0.0)  # the first 85 positions are the same tokens
    raw = np.asarray(m["B"]["std_k"]) - np.asarray(m["A"]["std_k"])
    assert (raw > 0.2).all()  # unmatched, the longer cut looks like a different prompt


def test_noise_is_the_larger_half_vs_half_spread_of_the_two_sides():
    a, b = _growing(120, seed=1), _growing(100, seed=2)
    result = compare(a, b)
    noise = np.asarray(result.metrics["noise"]["std_k"])

    def spread(s):
        h1 = layer_stats(first_positions(s, 0, 50)).std_k
        h2 = layer_stats(first_positions(s, 50, 100)).std_k
        return np.abs(h1 - h2)

    assert noise == pytest.approx(np.maximum(spread(a), spread(b)))
    assert (noise > 0).all()
    assert "half-vs-half spread" in " ".join(result.metrics["summary"])


def test_equal_lengths_say_so_and_the_figure_shades_the_noise():
    a, b = _growing(60, seed=3), _growing(60, seed=4)
    result = compare(a, b)
    assert result.metrics["summary"]["lengths"] == "both 60 tokens"
    ax = result.figures["compare_layers"].axes[0]
    assert any("noise" in (c.get_label() or "") for c in ax.collections)
