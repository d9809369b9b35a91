"""The decode-time task's chunked feeding against the one-token-per-forward loop it replaced, on the embedded
SmolLM2-135M (float32, CPU, one torch thread), in one process: ``kvscope.bench.streaming.run_config`` with
``chunk=1`` (one token per forward, every step reading all the weights) against ``chunk=N`` (N tokens per
forward; ``ks.compress`` still evicts token by token inside the attention). Called by
``benchmarks/streaming.py --speed``, which writes the section.
"""

from __future__ import annotations

import os
import statistics

import numpy as np
import torch

from kvscope.bench import streaming as S
from kvscope.models import load_model

TIMED = "h2o"  # the slowest per step: it reads every query's attention


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def equality_rows(model, ids, budget: int) -> list[str]:
    """One row per default strategy: seconds of chunk 1 and of ``S.CHUNK``, the largest NLL difference,
    the mean NLL after the budget of each, and whether the steps held agree."""
    rows = []
    for label in S.DEFAULT_STRATEGIES:
        one = S.run_config(model, ids, label, budget, chunk=1)
        many = S.run_config(model, ids, label, budget, chunk=S.CHUNK)
        diff = np.abs(one.nll - many.nll)
        rows.append(
            f"| {label}@{budget} | {one.seconds:.1f} | {many.seconds:.1f} | {one.seconds / many.seconds:.1f} "
            f"| {diff.max():.1e} | {diff[:, budget:].mean():.1e} | {one.nll[:, budget:].mean():.4f} "
            f"| {many.nll[:, budget:].mean():.4f} | {'yes' if one.held == many.held else 'NO'} |"
        )
    return rows


def timing_rows(model, ids, budget: int, chunks: list[int], repeats: int) -> list[str]:
    """``repeats`` alternating rounds of chunk 1 and each of ``chunks`` on ``TIMED``: one row per chunk."""
    seconds: dict[int, list[float]] = {c: [] for c in [1, *chunks]}
    for _ in range(repeats):
        for chunk in seconds:
            seconds[chunk].append(S.run_config(model, ids, TIMED, budget, chunk=chunk).seconds)
    base = statistics.median(seconds[1])
    return [
        f"| {chunk} | {spread(times)} | {base / statistics.median(times):.1f} |" for chunk, times in seconds.items()
    ]


def speed_report(tokens: int, budget: int, chunks: list[int], repeats: int) -> str:
    """The markdown section (its heading: ``streaming.SPEED_HEADING``)."""
    torch.set_num_threads(1)
    model, tok, _ = load_model("embedded")
    ids = S.stream_ids(tok, S.DEFAULT_SAMPLES, tokens)
    load0 = os.getloadavg()[0]
    equal = equality_rows(model, ids, budget)
    timed = timing_rows(model, ids, budget, chunks, repeats)
    chunks_shown = ",".join(map(str, chunks))
    return "\n".join(
        [
            "## Chunked feeding against one token per forward: the decode-time task's speed-up (embedded, float32, "
            "CPU)",
            "",
            f"Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming.py --speed --speed-tokens {tokens} "
            f"--speed-budget {budget} --speed-repeats {repeats} --speed-chunks {chunks_shown}`. One process, torch "
            f"threads {torch.get_num_threads()}, {S.DEFAULT_SAMPLES} streams x {tokens} tokens, budget {budget}: the "
            f"first {budget} tokens in one forward, then {tokens - 1 - budget} fed tokens, each one eviction step. "
            f"1-min load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on 2 cores shared "
            "with other jobs: compare the ratios, measured side by side, rather than absolute seconds.",
            "",
            f"Each default strategy once with one token per forward (chunk 1) and with the task's chunk "
            f"({S.CHUNK}): seconds, the largest and the mean |NLL difference| (nats) over every prediction, the "
            "mean NLL after the budget, and whether the tokens held at every step agree.",
            "",
            "| configuration | chunk 1 (s) | chunk " + str(S.CHUNK) + " (s) | speed-up | max abs NLL diff "
            "| mean abs diff after the budget | NLL, chunk 1 | NLL, chunked | steps held equal |",
            "|---|---|---|---|---|---|---|---|---|",
            *equal,
            "",
            f"{TIMED}@{budget}, {repeats} alternating rounds (chunk 1, then each chunk): median seconds (min-max) "
            "and the speed-up of the medians over chunk 1.",
            "",
            "| tokens per forward | seconds | speed-up |",
            "|---|---|---|",
            *timed,
            "",
        ]
    )
