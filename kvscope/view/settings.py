"""``ViewSettings``: every default of ``kvscope view`` in one place; the CLI builds its options from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSettings:
    """``step``: the ratio slider's step (each stop runs every strategy once); ``port`` 0: a free one;
    ``strategies`` ``None``: every registered one."""

    strategies: str | None = None
    step: float = 0.05
    port: int = 0
