"""The decode-time task's chunked feeding against the one-token-per-forward loop it replaced, on the embedded
SmolLM2-135M (float32, CPU, one torch thread), in one process: ``kvscope.bench.streaming.run_config`` with
``chunk=1`` (one token per forward, every step reading all the weights) against ``chunk=N`` (N tokens per
forward; ``ks.compress`` still evicts token by token inside the attention). Called by
``benchmarks/streaming.py --speed``, which writes the section.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from kvscope.bench import streaming as S
from kvscope.models import load_model

TIMED = "h2o"  # the slowest per step: it reads every query's attention


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def timed(model, ids, label: str, budget: int, chunk: int) -> tuple[S.Run, float]:
    """``run_config``'s run and the CPU seconds it took (this process: one thread, so its work, which other
    jobs on the machine disturb far less than wall time)."""
    t0 = time.process_time()
    run = S.run_config(model, ids, label, budget, chunk=chunk)
    return run, time.process_time() - t0


def equality_rows(model, ids, budget: int) -> list[str]:
    """One row per default strategy: CPU seconds of chunk 1 and of ``S.CHUNK``, the largest NLL difference,
    the mean NLL after the budget of each, and whether the steps held agree."""
    rows = []
    for label in S.DEFAULT_STRATEGIES:
        one, cpu_one = timed(model, ids, label, budget, 1)
        many, cpu_many = timed(model, ids, label, budget, S.CHUNK)
        diff = np.abs(one.nll - many.nll)
        rows.append(
            f"| {label}@{budget} | {cpu_one:.1f} | {cpu_many:.1f} | {cpu_one / cpu_many:.1f} "
            f"| {diff.max():.1e} | {diff[:, budget:].mean():.1e} | {one.nll[:, budget:].mean():.4f} "
            f"| {many.nll[:, budget:].mean():.4f} | {'yes' if one.held == many.held else 'NO'} |"
        )
    return rows


def timing_rows(model, ids, budget: int, chunks: list[int], repeats: int) -> list[str]:
    """``repeats`` alternating rounds of chunk 1 and each of ``chunks`` on ``TIMED``: one row per chunk."""
    wall: dict[int, list[float]] = {c: [] for c in [1, *chunks]}
    cpu: dict[int, list[float]] = {c: [] for c in wall}
    for _ in range(repeats):
        for chunk in wall:
            run, seconds = timed(model, ids, TIMED, budget, chunk)
            wall[chunk].append(run.seconds)
            cpu[chunk].append(seconds)
    base, base_wall = statistics.median(cpu[1]), statistics.median(wall[1])
    return [
        f"| {c} | {spread(cpu[c])} | {base / statistics.median(cpu[c]):.1f} | {spread(wall[c])} "
        f"| {base_wall / statistics.median(wall[c]):.1f} |"
        for c in wall
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
            f"({S.CHUNK}): CPU seconds, the largest and the mean |NLL difference| (nats) over every prediction, the "
            "mean NLL after the budget, and whether the tokens held at every step agree.",
            "",
            "| configuration | chunk 1 (CPU s) | chunk " + str(S.CHUNK) + " (CPU s) | speed-up | max abs NLL diff "
            "| mean abs diff after the budget | NLL, chunk 1 | NLL, chunked | steps held equal |",
            "|---|---|---|---|---|---|---|---|---|",
            *equal,
            "",
            "Window, StreamingLLM and H2O agree to float rounding. TOVA and KNorm differ more where two slots tie: "
            "KNorm's copies of a repeated token have layer-0 keys of the same norm (RoPE only rotates them) and "
            "TOVA's near-zero attentions tie within rounding, so float rounding, which differs between a chunk and "
            "one token, picks the slot that goes (either choice is the method); their means after the budget stay "
            "within 0.005 nats, far inside each line's gap to dense.",
            "",
            f"{TIMED}@{budget}, {repeats} alternating rounds (chunk 1, then each chunk): median CPU and wall seconds "
            "(min-max) and the speed-up of the medians over chunk 1.",
            "",
            "| tokens per forward | CPU seconds | speed-up (CPU) | wall seconds | speed-up (wall) |",
            "|---|---|---|---|---|",
            *timed,
            "",
        ]
    )
