"""Heatmap content, read back from the figure objects: colour limits, colour maps, the chosen layer."""

from types import SimpleNamespace

import matplotlib.colors
import numpy as np
import pytest
import torch

from kvscope.mas.mas_figures import heatmap_figure, heatmap_figures, minmax, singlelayer_figure
from kvscope.mas.methods import Transition

LAYERS, SLOTS = 5, 12


def transition(seed=0, slots=SLOTS, before=None):
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(LAYERS, slots, generator=g) * 1.2 - 0.6  # cosines in [-0.6, 0.6]
    sim[LAYERS // 2] = torch.linspace(-0.3, 0.45, slots)  # a middle layer unlike any other
    labels = ["planner:prompt"] * (slots - 3) + ["planner:latent"] * 3
    return Transition("planner_to_critic", sim, labels, list(range(slots)), before)


def images(fig):
    return [img for ax in fig.axes for img in ax.get_images()]


def is_diverging_at_zero(cmap) -> bool:
    """Both ends saturated and far apart, the centre pale: a diverging map (RdYlGn, RdBu, ...)."""
    lo, mid, hi = (np.array(matplotlib.colors.to_rgb(cmap(x))) for x in (0.0, 0.5, 1.0))
    return np.abs(lo - hi).sum() > 1.0 and mid.mean() > max(lo.mean(), hi.mean())


def test_multi_layer_map_is_fixed_to_minus_one_one_on_a_diverging_map():
    t = transition()
    run = SimpleNamespace(problem=SimpleNamespace(index=3), transitions=[t])
    [fig] = heatmap_figures([run], multi=True, single=False, n_layers=LAYERS).values()
    [img] = images(fig)
    assert img.get_clim() == (-1.0, 1.0)  # never autoscaled to the data's [-0.6, 0.6]
    assert is_diverging_at_zero(img.get_cmap()) and img.norm(0.0) == pytest.approx(0.5)
    assert np.array_equal(img.get_array(), t.similarity.numpy())


def test_single_layer_map_is_the_middle_layer_min_max_normalised_with_the_raw_range_in_the_title():
    t = transition()
    middle = LAYERS // 2
    run = SimpleNamespace(problem=SimpleNamespace(index=3), transitions=[t])
    figures = heatmap_figures([run], multi=False, single=True, n_layers=LAYERS)  # the layer is chosen here
    assert list(figures) == ["heatmap_singlelayer_planner_to_critic_problem3"]
    fig = figures["heatmap_singlelayer_planner_to_critic_problem3"]
    [img] = images(fig)
    shown = np.asarray(img.get_array())
    raw = t.similarity[middle].numpy()
    assert shown.shape == (1, SLOTS)
    assert np.allclose(shown[0], (raw - raw.min()) / (raw.max() - raw.min()))
    for other in set(range(LAYERS)) - {middle}:
        assert not np.allclose(shown[0], minmax(t.similarity[other].numpy()))
    assert img.get_clim() == (0.0, 1.0)
    title = [ax.get_title() for ax in fig.axes if ax.get_title()][0]
    assert "Range: [-0.300, 0.450]" in title and "Problem #3" in title


def test_before_and_after_filtering_are_drawn_one_above_the_other():
    before = transition(seed=1, slots=SLOTS)
    after = transition(seed=2, slots=7, before=before)
    multi = images(heatmap_figure(after, 1))
    assert [np.asarray(i.get_array()).shape for i in multi] == [(LAYERS, SLOTS), (LAYERS, 7)]
    assert all(i.get_clim() == (-1.0, 1.0) for i in multi)
    single = singlelayer_figure(after, 1, LAYERS // 2)
    titles = [ax.get_title() for ax in single.axes if ax.get_title()]
    assert titles[0].startswith("Single-Layer Similarity, before kNN filtering")
    assert titles[1].startswith("Single-Layer Similarity, after kNN filtering")
    assert f"Tokens: {SLOTS}" in titles[0] and "Tokens: 7" in titles[1]


def test_single_layer_before_and_after_share_one_colour_scale():
    middle = LAYERS // 2
    before = transition(seed=1, slots=SLOTS)
    after = transition(seed=2, slots=7, before=before)
    after.similarity[middle] = torch.linspace(0.0, 0.2, 7)  # a narrower range than before's [-0.3, 0.45]
    fig = singlelayer_figure(after, 1, middle)
    top, bottom = (np.asarray(i.get_array())[0] for i in images(fig))
    lo, hi = -0.3, 0.45  # the range over both panels
    assert np.allclose(top, (before.similarity[middle].numpy() - lo) / (hi - lo), atol=1e-6)
    assert np.allclose(bottom, (after.similarity[middle].numpy() - lo) / (hi - lo), atol=1e-6)
    assert bottom.max() < 0.7  # min-max scaled alone, the after panel's 0.2 would be drawn as 1.0
    assert all(i.get_clim() == (0.0, 1.0) for i in images(fig))
