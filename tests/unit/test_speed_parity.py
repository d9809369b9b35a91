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
