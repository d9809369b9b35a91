"""Planted-structure snapshots with hand-worked values for the statistics analyses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvscope.analyze.distribution import histogram, value_distribution
from kvscope.analyze.layer_stats import layer_stats
from kvscope.analyze.pca import pca_2d, pca_by_position
from kvscope.stats import excess_kurtosis, spearman
from tests.helpers import make_snapshot, random_snapshot


def test_head_of_zeros_is_fully_sparse():
    keys = [torch.randn(2, 6, 4) + 3.0]
    keys[0][1] = 0.0
    stats = layer_stats(make_snapshot(keys, [torch.ones(2, 6, 4)], attention=False))
    np.testing.assert_allclose(stats.head_sparsity_k[0], [0.0, 1.0])
    assert stats.sparsity_k[0] == 0.5 and stats.sparsity_v[0] == 0.0


def test_sparsity_threshold_is_configurable():
    x = torch.full((1, 4, 2), 1e-3)
    x[0, 0] = 1.0
    snap = make_snapshot([x], [x], attention=False)
    assert layer_stats(snap).sparsity_k[0] == 0.0
    assert layer_stats(snap, threshold=1e-2).sparsity_k[0] == 0.75


def test_k_equal_v_gives_correlation_one():
    k = torch.randn(2, 10, 8)
    stats = layer_stats(make_snapshot([k], [k.clone()], attention=False))
    assert stats.kv_norm_spearman[0] == pytest.approx(1.0)


def test_correlation_is_of_per_token_norms():
    # value norms reverse the key-norm order exactly -> Spearman -1
    k = torch.zeros(1, 5, 2)
    v = torch.zeros(1, 5, 2)
    k[0, :, 0] = torch.arange(1.0, 6.0)
    v[0, :, 1] = -torch.arange(5.0, 0.0, -1)  # norms 5,4,3,2,1 (sign does not matter)
    assert layer_stats(make_snapshot([k], [v], attention=False)).kv_norm_spearman[0] == pytest.approx(-1.0)


def test_planted_outlier_channel_shows_in_channel_statistics():
    k = torch.ones(2, 16, 4)
    k[1, :, 2] = 40.0  # kv_head 1, channel 2 -> flat index 1*4+2 = 6
    stats = layer_stats(make_snapshot([k], [torch.ones(2, 16, 4)], attention=False))
    assert int(np.argmax(stats.channel_mean_abs_k[0])) == 6
    assert stats.outlier_ratio_k[0] == pytest.approx(40.0)
    assert stats.outlier_ratio_v[0] == pytest.approx(1.0)
    assert stats.mean_abs_k[0] == pytest.approx((7 * 16 + 40 * 16) / 128)


def test_std_and_mean_abs_golden():
    k = torch.tensor([[[1.0, -1.0], [3.0, -3.0]]])  # mean 0, |x| mean 2, var (1+1+9+9)/4 = 5
    stats = layer_stats(make_snapshot([k], [k], attention=False))
    assert stats.std_k[0] == pytest.approx(np.sqrt(5.0))
    assert stats.mean_abs_k[0] == pytest.approx(2.0)


def test_spearman_golden_and_degenerate():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6*2/(4*15)
    assert np.isnan(spearman([1, 2], [1, 2]))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_kurtosis_and_outlier_share():
    assert excess_kurtosis(np.array([-1.0, 1.0] * 50)) == pytest.approx(-2.0)
    x = np.zeros(10000)
    x[0] = 1000.0
    h = histogram(x)
    assert h.outlier_share == pytest.approx(1e-4)
    assert h.counts.sum() == 10000 and h.kurtosis > 1000


def test_value_distribution_pools_every_element():
    snap = random_snapshot(layers=2, kv_heads=2, n=5, d=4)
    dist = value_distribution(snap)
    assert dist.key.n == 2 * 2 * 5 * 4 and dist.key.counts.sum() == dist.key.n
    assert dist.layer_kurtosis_k.shape == (2,)


def test_pca_recovers_a_line_and_handles_tiny_inputs():
    t = np.linspace(-1, 1, 20)
    x = np.stack([t, 2 * t, np.zeros_like(t)], axis=1)
    coords, share = pca_2d(x)
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(t) * np.sqrt(5), atol=1e-9)
    one = pca_by_position(random_snapshot(n=1), 0)
    assert one.key.shape == (1, 2) and np.all(one.key == 0)


def test_spearman_is_scipy_with_one_nan_rule():
    from scipy.stats import spearmanr

    x, y = np.array([3.0, 1, 4, 1, 5, 9, 2, 6]), np.array([2.0, 7, 1, 8, 2, 8, 1, 8])
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    x2, y2 = np.r_[x, np.nan], np.r_[y, 3.0]
    assert spearman(x2, y2) == pytest.approx(spearman(x, y))  # NaN pairs dropped


def test_partial_spearman_removes_a_shared_position_trend():
    from kvscope.stats import partial_spearman

    rng = np.random.default_rng(0)
    pos = np.arange(400.0)
    a, b = pos + rng.normal(0, 40, 400), pos + rng.normal(0, 40, 400)
    assert spearman(a, b) > 0.8 and abs(partial_spearman(a, b, pos)) < 0.15


def test_bootstrap_interval_against_a_hand_computation():
    from kvscope.stats import bootstrap_ci

    x = np.array([0.1, 0.4, -0.2, 0.3, 0.0])
    mean, lo, hi = bootstrap_ci(x, n_boot=4000, seed=1)
    # by hand: the same resampling, written out with numpy
    rng = np.random.default_rng(1)
    means = x[rng.integers(0, 5, size=(4000, 5))].mean(axis=1)
    assert mean == pytest.approx(0.12)
    assert (lo, hi) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)))
    # and the normal approximation agrees roughly: mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * x.std() / np.sqrt(5)
    assert lo == pytest.approx(0.12 - half, abs=0.06) and hi == pytest.approx(0.12 + half, abs=0.06)
    assert bootstrap_ci([0.5]) == (0.5, 0.5, 0.5)
