"""Every analyze figure draws on a 3-token and on a 2000-token synthetic snapshot, is skipped with a
note (never a crash) when the snapshot lacks what it needs, and a planted single-position stripe is
visible in the cache heatmap PNG. Figures are made without pyplot: the backend never changes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from kvscope.analyze.figure_registry import FIGURES, FigureData, draw_figures, encode
from kvscope.analyze.registry import AnalysisOptions, run_all
from kvscope.analyze.weights import weight_magnitudes
from tests.helpers import make_snapshot, random_snapshot


def _results(snap, with_weights=True):
    ctx = run_all(snap, AnalysisOptions(layer=snap.n_layers // 2))
    if with_weights:
        gen = torch.Generator().manual_seed(0)
        ws = [torch.randn(16, 32, generator=gen) for _ in range(snap.n_layers)]
        ctx.results["weights"] = weight_magnitudes(ws, ws)
        ctx.notes.pop("weights", None)
    return ctx


@pytest.mark.parametrize("n", [3, 2000])
def test_every_figure_draws_without_touching_the_backend(n):
    import matplotlib

    before = matplotlib.get_backend()
    snap = random_snapshot(layers=2, kv_heads=2, n=n, d=16, seed=n)
    ctx = _results(snap)
    figures, skipped = draw_figures(FigureData(ctx.results, {"layer": 1}), ctx.notes)
    assert not skipped, skipped
    assert list(figures) == list(FIGURES)
    for fig in figures.values():
        assert encode(fig, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == before


def test_missing_attention_and_queries_skip_with_notes():
    snap = random_snapshot(layers=2, kv_heads=2, n=20, d=8, attention=False, queries=False)
    ctx = run_all(snap, AnalysisOptions(layer=0))
    figures, skipped = draw_figures(FigureData(ctx.results, {}), ctx.notes)
    assert "no attention data" in skipped["importance_validation"]
    assert "no queries" in skipped["head_specialization"]
    assert "no model" in skipped["weight_magnitude_distribution"]
    assert "low_importance_tokens" in figures and "kv_quantization_error" in figures
    assert len(figures) == len(FIGURES) - 3


def _bright_rows(snap, **meta) -> int:
    """Pixel rows in which most of the tile is at the top of the colour scale (viridis yellow): at least
    200 yellow pixels (a lone clipped element is ~50 pixels wide, the stripe covers the tile)."""
    from PIL import Image

    ctx = run_all(snap, AnalysisOptions(layer=0), only=["cache_maps"])
    fig = FIGURES["kv_cache_layers"].draw(FigureData(ctx.results, meta))
    img = np.asarray(Image.open(io.BytesIO(encode(fig, "png"))).convert("RGB")).astype(int)
    yellow = (img[..., 0] > 200) & (img[..., 1] > 190) & (img[..., 2] < 90)
    return int((yellow.sum(axis=1) >= 200).sum())


@pytest.mark.parametrize("n", [213, 700])
def test_planted_single_position_stripe_is_visible(n):
    gen = torch.Generator().manual_seed(0)
    k = torch.rand(1, n, 16, generator=gen) * 0.1
    k[0, n // 3] = 1.0  # one position large in every channel
    snap = make_snapshot([k], [k.clone()], attention=False, queries=False)
    assert _bright_rows(snap, cache_norm="clip") >= 1
    k[0, n // 3] = 0.05  # without the stripe no pixel row reaches the top of the scale
    assert _bright_rows(make_snapshot([k], [k.clone()], attention=False, queries=False), cache_norm="clip") == 0
