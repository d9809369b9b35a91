"""``AnalyzeSettings`` and ``CompareSettings``: every default of ``kvscope analyze`` and ``kvscope compare``
in one place; the CLI builds its options from them and ``ks.analyze`` takes the same defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnalyzeSettings:
    """``layer`` ``None``: the middle layer; ``sparsity_threshold``: ``|x|`` below it counts as zero;
    ``sink_share``: attention share above which a token is a sink in a layer; ``cache_scale`` /
    ``cache_norm``: the colour scale of the cache heatmaps; ``threads`` ``None``: torch's default."""

    out: str = "kvscope-out"
    fmt: str = "png"
    layer: int | None = None
    sparsity_threshold: float = 1e-5
    sink_share: float = 0.2
    cache_scale: str = "layer"
    cache_norm: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class CompareSettings:
    out: str = "kvscope-compare"
