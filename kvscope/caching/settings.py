"""``CachingSettings``: every default of ``kvscope caching`` in one place; the CLI builds its options
from it and ``ks.explain_caching`` takes the same defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CachingSettings:
    """``layer`` ``None``: the middle layer; ``new_tokens`` decoded greedily with and without the cache;
    ``repeats``: timed runs per measurement (medians)."""

    layer: int | None = None
    new_tokens: int = 32
    repeats: int = 3
    out: str = "kvscope-caching"
