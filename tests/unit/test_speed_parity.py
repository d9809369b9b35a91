"""Speed changes that must not change a number: each fast path against the slow one it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from kvscope.stats import rankdata, spearman


@pytest.mark.parametrize("seed", range(6))
def test_spearman_is_bit_identical_to_scipy(seed):
    from scipy.stats import rankdata as scipy_rankdata
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 400))
    x = rng.normal(size=n)
    y = x * rng.normal() + rng.normal(size=n)
    if seed % 2:  # ties on both sides
        x, y = np.round(x, 1), np.round(y, 0)
    assert np.array_equal(rankdata(x), scipy_rankdata(x))
    assert spearman(x, y) == float(spearmanr(x, y).statistic)


def test_rankdata_averages_ties():
    assert rankdata([3.0, 1.0, 3.0, 2.0, 3.0]).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_palette_png_is_the_same_as_through_a_png():
    """The palette path renders through an uncompressed TIFF; the bytes equal the PNG round trip's."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from kvscope.analyze.figure_registry import encode
    from kvscope.kit.figures import DPI, PNG_COMPRESS_LEVEL

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(0).normal(size=(40, 60)), aspect="auto")
    ax.set_title("palette")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    slow = io.BytesIO()
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    img = img.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    img.save(slow, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    assert encode(fig, "png", palette=True) == slow.getvalue()
    plt.close(fig)


def test_a_laid_out_figure_is_saved_at_its_own_size_in_one_draw():
    """A figure that ran tight_layout() is written uncropped at figsize x dpi, drawn once (no layout pass
    and no tight crop), and keeps its layout placeholder; one without a layout is still cropped."""
    import io

    from matplotlib.figure import Figure
    from PIL import Image

    from kvscope.kit.figures import DPI, figure_bytes

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    fig.tight_layout()
    engine = fig.get_layout_engine()
    draws = []
    fig.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    assert Image.open(io.BytesIO(figure_bytes(fig))).size == (3 * DPI, 2 * DPI)
    assert len(draws) == 1 and fig.get_layout_engine() is engine
    bare = Figure(figsize=(3, 2))
    bare.text(0.5, 0.5, "x")
    width, height = Image.open(io.BytesIO(figure_bytes(bare))).size
    assert width < 3 * DPI and height < 2 * DPI


@pytest.mark.parametrize("n", [1, 2, 3, 10, 213, 41_000, 100_001])
@pytest.mark.parametrize("q", [0.0, 0.25, 0.995, 1.0])
def test_quantile_is_bit_identical_to_torch(n, q):
    """The cache maps' colour limit from two order statistics equals ``torch.quantile``, ties included."""
    import torch

    from kvscope.analyze.cache_maps import quantile

    for dtype in (torch.float32, torch.float64):
        x = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=dtype).abs()
        x[: n // 5] = x[: n // 5].round()
        assert torch.equal(quantile(x, q), torch.quantile(x, q))


def test_a_constrained_figure_is_laid_out_once_and_saved_as_matplotlib_saves_it():
    """A figure with a live layout engine is laid out once and drawn once (matplotlib's save would draw it
    twice), into the same bytes as matplotlib's own save, and keeps its engine; at another dpi (thumbnails)
    matplotlib's own path is taken."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kvscope.kit.figures import DPI, PNG_COMPRESS_LEVEL, figure_bytes

    def figure():
        fig = Figure(figsize=(3, 2), layout="constrained", dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        fig.colorbar(ax.imshow(np.random.default_rng(0).normal(size=(30, 40)), aspect="auto"), ax=ax, label="x")
        ax.set_title("constrained")
        return fig

    fig = figure()
    engine, draws = fig.get_layout_engine(), []
    fig.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    ours = figure_bytes(fig)
    assert len(draws) == 1 and fig.get_layout_engine() is engine
    theirs = io.BytesIO()
    figure().savefig(theirs, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    assert ours == theirs.getvalue()
    small = figure()
    small_draws = []
    small.canvas.mpl_connect("draw_event", lambda event: small_draws.append(event))
    figure_bytes(small, dpi=28)
    assert len(small_draws) == 2


def test_the_cli_loads_with_the_collector_off_then_freezes_what_it_keeps():
    """kvscope analyze's loader: no collection while the model loads, every object alive then frozen, the
    collector on again after (also when loading fails)."""
    import gc

    from kvscope.cli.analyze import _kept_to_the_end

    def load():
        assert not gc.isenabled()
        return "model"

    try:
        assert _kept_to_the_end(load) == "model"
        assert gc.isenabled() and gc.get_freeze_count() > 0
        gc.unfreeze()

        def fail():
            raise OSError("no weights")

        with pytest.raises(OSError):
            _kept_to_the_end(fail)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.parametrize(("top", "minor"), [(1e2, True), (10**2.5, True), (1e4, False)])
def test_log_scale_keeps_minor_ticks_up_to_three_decades(top, minor):
    """``log_scale``: log axes; the unlabelled minor ticks only on axes spanning at most three decades,
    the decade ticks and their labels on every one."""
    from kvscope.analyze.figure_base import log_scale, new_figure

    fig, axes = new_figure(3, 2)
    ax = axes[0][0]
    ax.plot([1.0, top], [1.0, top])
    log_scale(ax, "x", "y")
    fig.canvas.draw()
    for axis in (ax.xaxis, ax.yaxis):
        assert axis.get_scale() == "log"
        assert (len(axis.get_minorticklocs()) > 0) is minor
        labels = [t.get_text() for t in axis.get_majorticklabels() if t.get_text()]
        assert len(labels) >= 3 and "$\\mathdefault{10^{0}}$" in labels
