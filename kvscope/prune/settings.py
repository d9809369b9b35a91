"""``PruneSettings``: every default of ``kvscope prune`` in one place; the CLI builds its options from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PruneSettings:
    """``ratio``: the fraction of prompt tokens a strategy removes; ``repeats``: timed runs after a
    warm-up; ``out``: the folder
    of the sweep, scan and leave-one-out modes. ``None``: the built-in prompt and continuation."""

    prompt: str | None = None
    continuation: str | None = None
    prune_layers: str | None = None
    prune_heads: str | None = None
    strategy: str | None = None
    ratio: float = 0.5
    quantize: str | None = None
    repeats: int = 5
    scan: str | None = None
    out: str = "kvscope-prune"
