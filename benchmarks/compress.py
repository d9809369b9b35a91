"""Benchmark: the overhead of ``ks.compress`` around ``model.generate`` on the embedded SmolLM2-135M
(float32, CPU, one torch thread).

A prompt of about ``--tokens`` tokens (kvscope prune's default prompt repeated), greedy ``--new`` tokens.
Three ways, run side by side in alternation (``plain``, ``ratio 0``, ``snapkv 0.5``, then again) for
``--repeats`` rounds after one warm-up round; medians and min-max of the wall time of one generate call:

- ``plain``: ``model.generate`` alone (transformers' sdpa attention);
- ``ratio 0``: ``with ks.compress(model, "snapkv", ratio=0)``: every step through kvscope's attention
  function, nothing to record or evict;
- ``snapkv 0.5``: the same evicting half the prompt.

The target is at most 10 % over plain at ratio 0. Also checks that ratio 0 gives plain's tokens.

Usage: ``python benchmarks/compress.py [--tokens 2000] [--new 32] [--repeats 3] [--out benchmarks/results/compress.md]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import kvscope as ks
from kvscope.models import load_model
from kvscope.prune.default_texts import DEFAULT_PROMPT

ROOT = Path(__file__).resolve().parents[1]
WAYS = {"plain": None, "ratio 0": 0.0, "snapkv 0.5": 0.5}


def prompt_ids(tok, tokens: int) -> torch.Tensor:
    """About ``tokens`` tokens: the default prompt repeated, cut to length."""
    ids = tok(DEFAULT_PROMPT, return_tensors="pt").input_ids[0]
    reps = -(-tokens // len(ids))
    return ids.repeat(reps)[:tokens][None]


def one(model, ids: torch.Tensor, new: int, ratio: float | None) -> tuple[float, list[int]]:
    """Seconds of one greedy generate call, and its new tokens."""
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False)
    t0 = time.perf_counter()
    with torch.inference_mode():
        if ratio is None:
            out = model.generate(**kw)
        else:
            with ks.compress(model, "snapkv", ratio=ratio):
                out = model.generate(**kw)
    return time.perf_counter() - t0, out[0, ids.shape[1] :].tolist()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/compress.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok, _ = load_model("embedded")
    ids = prompt_ids(tok, args.tokens)
    times: dict[str, list[float]] = {w: [] for w in WAYS}
    tokens: dict[str, list[int]] = {}
    for round_ in range(args.repeats + 1):
        for way, ratio in WAYS.items():
            seconds, tokens[way] = one(model, ids, args.new, ratio)
            if round_:  # round 0 warms up
                times[way].append(seconds)
            print(f"round {round_} {way}: {seconds:.2f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args, ids.shape[1], times, tokens))
    print(args.out.read_text())


def render(args, n: int, times: dict[str, list[float]], tokens: dict[str, list[int]]) -> str:
    base = statistics.median(times["plain"])
    rows = [
        f"| {way} | {statistics.median(t):.2f} | {min(t):.2f}-{max(t):.2f} | "
        f"{100 * (statistics.median(t) / base - 1):+.1f} % |"
        for way, t in times.items()
    ]
    same = "the same" if tokens["ratio 0"] == tokens["plain"] else "NOT the same"
    return "\n".join(
        [
            "## ks.compress: overhead around model.generate, SmolLM2-135M (float32, CPU)",
            "",
            f"Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compress.py --tokens {args.tokens} "
            f"--new {args.new} --repeats {args.repeats}`. torch threads: 1. 1-min load average at the end: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: absolute times are noisy; the "
            "three ways alternate, so their ratios less so).",
            f"Prompt: {n} tokens; {args.new} greedy new tokens per call. Median of {args.repeats} rounds after "
            "one warm-up round, each round running the three ways one after the other.",
            "",
            "| way | seconds per generate (median) | min-max | vs plain |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Target: at most +10 % at ratio 0. Ratio 0 generates {same} tokens as plain generate. At ratio 0 "
            "nothing can be evicted, so nothing is recorded at prefill; the hooks still run and every attention "
            "call still goes through the kvscope_compress attention function. SnapKV 0.5 also records the "
            "prompt's queries, scores them (float64, its 32-query window) and masks half the prompt while "
            "decoding (the dense cache is kept: masking, not removal, so decoding is not faster).",
            "",
        ]
    )


if __name__ == "__main__":
    main()
