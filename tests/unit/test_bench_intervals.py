"""Interval code against hand-worked values."""

from __future__ import annotations

import math

import pytest

from kvscope.stats import bootstrap_ci, overlaps, wilson


def test_wilson_seven_of_ten_by_hand():
    # p = 0.7, z = 1.95996, z²/n = 0.38415: centre = (0.7 + 0.19207) / 1.38415 = 0.64449,
    # half = 1.95996 / 1.38415 * sqrt(0.021 + 0.0096037) = 1.41600 * 0.174939 = 0.24771
    lo, hi = wilson(7, 10)
    assert lo == pytest.approx(0.39678, abs=1e-5)
    assert hi == pytest.approx(0.89221, abs=1e-5)


def test_wilson_edges_stay_inside_0_1():
    # 0 of 10: centre = half = 0.19207 / 1.38415 * ... -> upper = z²/n / (1 + z²/n) = 0.38415 / 1.38415
    assert wilson(0, 10) == pytest.approx((0.0, 0.38415 / 1.38415), abs=1e-5)
    lo, hi = wilson(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(1 - 0.38415 / 1.38415, abs=1e-5)
    assert all(math.isnan(v) for v in wilson(0, 0))
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_wilson_always_holds_its_point_estimate():
    # found by the 50-sample table: for 0 of 7, 25 of 25 and 201 more (k, n) the rounded bounds missed
    # k / n by ~1e-17, and the figure's error bars came out negative
    for n in range(1, 300):
        for k in range(n + 1):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0, (k, n)
    assert wilson(0, 7)[0] == 0.0 and wilson(25, 25)[1] == 1.0


def test_bootstrap_mean_is_seeded_and_brackets_the_mean():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    a, b = bootstrap_ci(values, seed=3)[1:], bootstrap_ci(values, seed=3)[1:]
    assert a == b
    assert a[0] < sum(values) / 5 < a[1]
    assert a[0] >= 1.0 and a[1] <= 10.0
    assert bootstrap_ci([2.5, 2.5, 2.5]) == (2.5, 2.5, 2.5)  # no spread, no interval
    assert bootstrap_ci([4.0]) == (4.0, 4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_overlaps():
    assert overlaps((0.1, 0.5), (0.5, 0.9))
    assert not overlaps((0.1, 0.4), (0.5, 0.9))
    assert not overlaps((math.nan, math.nan), (0.0, 1.0))
