"""Small statistics helpers shared by the analyses (numpy in, numpy out)."""

from __future__ import annotations

import numpy as np


def rankdata(x: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties given their average rank (as Spearman's rho requires)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (average ranks for ties); NaN pairs dropped.

    NaN when fewer than 3 pairs remain or either side is constant.
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3:
        return float("nan")
    rx, ry = rankdata(x) - (x.size + 1) / 2, rankdata(y) - (y.size + 1) / 2
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def excess_kurtosis(x: np.ndarray) -> float:
    """Fisher (excess) kurtosis: E[(x-mu)^4]/sigma^4 - 3; 0 for a Gaussian. NaN if constant."""
    x = np.asarray(x).ravel()
    c = x - x.mean(dtype=np.float64)
    sq = c * c
    var = float(sq.mean(dtype=np.float64))
    return float((sq * sq).mean(dtype=np.float64) / var ** 2 - 3.0) if var > 0 else float("nan")


def nanmean_or_nan(x: np.ndarray, axis=None):
    """``np.nanmean`` without the all-NaN warning (returns NaN there)."""
    x = np.asarray(x, dtype=np.float64)
    count = np.isfinite(x).sum(axis=axis)
    total = np.where(np.isfinite(x), x, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
