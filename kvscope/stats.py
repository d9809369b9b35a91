"""Small statistics helpers shared by the analyses (numpy in, numpy out).

``spearman`` is the ONE Spearman of kvscope (analyze and prune import it from here): the Pearson
correlation of average ranks, computed exactly as ``scipy.stats.spearmanr`` does (``np.corrcoef`` of the
rank columns, so the result is bit-identical; a unit test checks it) but without importing
``scipy.stats``, whose import alone takes seconds, with one NaN rule. ``partial_spearman`` controls for a third variable
(position); ``bootstrap_ci`` gives the 95 % percentile interval of a mean over samples (prompts, bench
samples), the ONE bootstrap of kvscope; ``wilson`` the 95 % score interval of a proportion.

Wilson (1927): for ``k`` successes in ``n`` trials, ``p = k / n`` and ``z`` the normal quantile,
centre ``(p + z²/2n) / (1 + z²/n)``, half-width ``z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)``. Unlike
the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes.
"""

from __future__ import annotations

import math

import numpy as np

MIN_PAIRS = 3
CONFIDENCE = 0.95
N_BOOT = 2000
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def spearman(x, y) -> float:
    """Spearman rank correlation of two 1-D arrays (average ranks for ties), as ``scipy.stats.spearmanr``.

    NaN rule (the only one in kvscope): pairs where either side is NaN or infinite are dropped; the
    result is NaN when fewer than 3 pairs remain or either remaining side is constant.
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < MIN_PAIRS or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(np.corrcoef(np.column_stack((rankdata(x), rankdata(y))), rowvar=False)[1, 0])


def rankdata(x) -> np.ndarray:
    """1-based average ranks ``[n]`` (float64) of a 1-D array of finite values: tied values share the mean
    of the ranks they span (``scipy.stats.rankdata``'s default ``"average"`` method)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]  # where each run of equal values starts
    dense = np.cumsum(first)[np.argsort(order, kind="mergesort")]  # 1-based index of each value's run
    bounds = np.r_[np.nonzero(first)[0], a.size]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def partial_spearman(x, y, z) -> float:
    """Spearman correlation of ``x`` and ``y`` controlling for ``z``: the partial correlation of their
    ranks, ``(r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))`` (Kendall & Stuart; the first-order
    partial correlation formula applied to Spearman's rho). Same NaN rule as :func:`spearman`; also
    NaN when ``x`` or ``y`` is a perfect monotone function of ``z``.
    """
    x, y, z = (np.asarray(a, dtype=np.float64).ravel() for a in (x, y, z))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[keep], y[keep], z[keep]
    rxy, rxz, ryz = spearman(x, y), spearman(x, z), spearman(y, z)
    denom = (1 - rxz**2) * (1 - ryz**2)
    if not np.isfinite(denom) or denom <= 1e-12:
        return float("nan")
    return float((rxy - rxz * ryz) / np.sqrt(denom))


def bootstrap_ci(
    samples, confidence: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``samples`` (NaN dropped) and its percentile-bootstrap interval.

    Resamples the values with replacement ``n_boot`` times (fixed ``seed``, so reruns agree) and takes
    the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of the resampled means. One sample gives
    an interval of zero width ``(x, x, x)``; none gives NaNs.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``k`` successes of ``n``; ``(nan, nan)`` when ``n == 0``."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= k <= n:
        raise ValueError(f"successes {k} outside 0..{n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # exact bounds are 0 at k = 0 and 1 at k = n; clamp so rounding never leaves p outside its interval
    return 0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half)


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals share a point (NaN intervals never overlap)."""
    if any(math.isnan(v) for v in (*a, *b)):
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes (McNemar, 1947).

    ``b``: pairs where only the first configuration is right; ``c``: only the second. Under the null
    hypothesis the ``b + c`` discordant pairs split as Binomial(b + c, 1/2), so
    ``p = min(1, 2 * P(X <= min(b, c)))``, computed with exact integers; 1.0 with no discordant pair.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def bootstrap_bands(
    rows, confidence: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rows`` ``[sample, k]`` (e.g. prompts x layers) -> ``(mean, low, high)`` ``[k]``, each column
    by :func:`bootstrap_ci` (the same resampled prompts for every column)."""
    rows = np.asarray(rows, dtype=np.float64)
    out = np.array([bootstrap_ci(rows[:, j], confidence, n_boot, seed) for j in range(rows.shape[1])])
    return out[:, 0], out[:, 1], out[:, 2]


def excess_kurtosis(x: np.ndarray) -> float:
    """Fisher (excess) kurtosis: E[(x-mu)^4]/sigma^4 - 3; 0 for a Gaussian. NaN if constant."""
    x = np.asarray(x).ravel()
    c = x - x.mean(dtype=np.float64)
    sq = c * c
    var = float(sq.mean(dtype=np.float64))
    return float((sq * sq).mean(dtype=np.float64) / var**2 - 3.0) if var > 0 else float("nan")


def nanmean_or_nan(x: np.ndarray, axis=None):
    """``np.nanmean`` without the all-NaN warning (returns NaN there)."""
    x = np.asarray(x, dtype=np.float64)
    count = np.isfinite(x).sum(axis=axis)
    total = np.where(np.isfinite(x), x, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def nanmedian_or_nan(x) -> float:
    """Median of the finite values, NaN when there are none (no warning)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


__all__ = [
    "bootstrap_bands",
    "bootstrap_ci",
    "excess_kurtosis",
    "nanmean_or_nan",
    "nanmedian_or_nan",
    "overlaps",
    "partial_spearman",
    "spearman",
    "wilson",
]
