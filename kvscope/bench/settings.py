"""``BenchSettings``: every default of ``kvscope bench`` in one place; the CLI builds its options from it."""

from __future__ import annotations

from dataclasses import dataclass

from kvscope.prune.engine import BENCH

# variable_tracking is left out by default: SmolLM2-135M answers 0 of 6 at 500 tokens (a task the baseline
# cannot do tells nothing about compression); ask for it with tasks=[..., "variable_tracking"].
DEFAULT_TASKS = ("passkey", "kv_retrieval", "multi_needle", "text")


@dataclass(frozen=True)
class BenchSettings:
    """``samples`` per built-in task (``None`` on the command line: this default, or every line of
    ``data``); ``context_tokens`` of the generated tasks; ``ratios`` and ``quantize`` (KIVI specs) the
    configurations besides every registered strategy; ``max_answer_tokens`` ``None``: 6 for the built-in
    tasks, 16 for ``data``."""

    tasks: tuple[str, ...] = DEFAULT_TASKS
    samples: int = 5
    context_tokens: int = 500
    strategies: tuple[str, ...] | None = None
    # the engine's named defaults (kvscope.prune.engine.BENCH): one ratio, so `kvscope bench` answers in
    # minutes; the published table (`make bench`) passes its ratios explicitly.
    ratios: tuple[float, ...] = tuple(BENCH.ratios)
    quantize: tuple[str, ...] = tuple(BENCH.quantize)
    data: str | None = None
    seed: int = 0
    chat: bool = False
    max_answer_tokens: int | None = None
    out: str = "kvscope-bench"
