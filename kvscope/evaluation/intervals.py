"""95 % intervals (Wilson's score interval for a proportion, a percentile bootstrap for a mean) and the
exact McNemar test for two configurations scored on the same samples.

Wilson (1927): for ``k`` successes in ``n`` trials, ``p = k / n`` and ``z`` the normal quantile,
centre ``(p + z²/2n) / (1 + z²/n)``, half-width ``z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)``. Unlike
the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


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


def bootstrap_mean(
    values: Sequence[float], seed: int = 0, resamples: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded; ``(nan, nan)`` when empty,
    the value itself when there is one)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


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
