"""Every analyze figure draws on a 3-token and on a 2000-token synthetic snapshot, and is skipped
with a note (never a crash) when the snapshot lacks what it needs."""

from __future__ import annotations

import pytest
import torch

from kvscope.analyses.registry import AnalysisOptions, run_all
from kvscope.analyses.weights import weight_magnitudes
from kvscope.plots.analyze import FIGURES, FigureData, render_all
from tests.unit.test_analyses_synth import random_snapshot


def _png_ok(path) -> bool:
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return False
    img = mpimg.imread(path)
    return img.ndim == 3 and float(img[..., :3].std()) > 0.01


def _results(snap, with_weights=True):
    ctx = run_all(snap, AnalysisOptions(layer=snap.n_layers // 2))
    if with_weights:
        gen = torch.Generator().manual_seed(0)
        ws = [torch.randn(16, 32, generator=gen) for _ in range(snap.n_layers)]
        ctx.results["weights"] = weight_magnitudes(ws, ws)
        ctx.notes.pop("weights", None)
    return ctx


@pytest.mark.parametrize("n", [3, 2000])
def test_every_figure_draws(tmp_path, n):
    snap = random_snapshot(layers=2, kv_heads=2, n=n, d=16, seed=n)
    ctx = _results(snap)
    status = render_all(FigureData(ctx.results, {"layer": 1}), tmp_path, "png", ctx.notes, jobs=1)
    assert set(status) == set(FIGURES)
    bad = {k: v for k, v in status.items() if "files" not in v}
    assert not bad, bad
    for spec in FIGURES.values():
        for stem in spec.files:
            assert _png_ok(tmp_path / f"{stem}.png"), stem


def test_missing_attention_and_queries_skip_with_notes(tmp_path):
    snap = random_snapshot(layers=2, kv_heads=2, n=20, d=8, attention=False, queries=False)
    ctx = run_all(snap, AnalysisOptions(layer=0))
    status = render_all(FigureData(ctx.results, {}), tmp_path, "png", ctx.notes, jobs=1)
    assert "no attention data" in status["importance_validation"]["skipped"]
    assert "no queries" in status["head_specialization"]["skipped"]
    assert "no model" in status["weight_magnitude_distribution"]["skipped"]
    drawn = [k for k, v in status.items() if "files" in v]
    assert "low_importance_tokens" in drawn and "kv_quantization_error" in drawn
    assert len(drawn) == 14


def test_parallel_rendering_writes_every_file(tmp_path):
    snap = random_snapshot(layers=2, kv_heads=2, n=10, d=8)
    ctx = _results(snap)
    status = render_all(FigureData(ctx.results, {}), tmp_path, "svg", ctx.notes, jobs=2)
    names = sorted(p.split("/")[-1] for v in status.values() for p in v.get("files", []))
    assert names == sorted(f"{stem}.svg" for spec in FIGURES.values() for stem in spec.files)
    assert all((tmp_path / n).read_text().lstrip().startswith("<?xml") for n in names)
