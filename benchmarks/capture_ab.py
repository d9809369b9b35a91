"""Benchmark: attention capture, this checkout's recording attention against an older commit's, in one process.

On a loaded machine, fresh processes started minutes apart see different loads, so their wall times cannot
be compared (``capture.py --base``). Here one process loads the embedded model once and alternates three
arms per round: a bare ``model(ids)``, ``run_capture(attention=True)`` with this checkout's fast path
(``kvscope.attention._prefill_flash``), and the same with the older commit's ``_prefill_flash`` (read with
``git show REV:kvscope/attention.py``; the rest of the capture is this checkout's, so only the recording
attention differs). Each arm reports the process CPU time (user + system) and the wall time of its run; the
order of the arms swaps between rounds, and each attention arm also reports the CPU time spent in its
column-sum pass (``_received_from_lse``, the part that makes attention received). One torch thread.

Usage: ``KVSCOPE_GSM8K=../shared/data/gsm8k/test.jsonl python benchmarks/capture_ab.py --base-rev 968cf5c
[--tokens 8192] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


COLUMN_SUMS = [0.0]  # CPU seconds in the running arm's column-sum pass


def timed(fn):
    """``fn`` adding its CPU seconds to ``COLUMN_SUMS``."""

    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            COLUMN_SUMS[0] += time.process_time() - start

    return wrapper


def old_prefill_flash(rev: str):
    """The ``_prefill_flash`` of ``kvscope/attention.py`` at ``rev``, executed in that module's namespace
    (its column-sum pass timed)."""
    import kvscope.attention as mod

    source = subprocess.run(
        ["git", "show", f"{rev}:kvscope/attention.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    namespace = dict(vars(mod))
    exec(compile(source, f"{rev}:kvscope/attention.py", "exec"), namespace)
    namespace["_received_from_lse"] = timed(namespace["_received_from_lse"])
    return namespace["_prefill_flash"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-rev", default="968cf5c")
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from capture import prompt_ids

    import kvscope.attention as attention
    from kvscope.capture.capturing import run_capture
    from kvscope.models import load_model

    model, tok, info = load_model("embedded")
    attention._received_from_lse = timed(attention._received_from_lse)
    ids = prompt_ids(tok, args.tokens)
    mine, base = attention._prefill_flash, old_prefill_flash(args.base_rev)

    def capture_with(fn, x=ids):
        attention._prefill_flash = fn
        try:
            return run_capture(model, x, tok, info=info, attention=True)
        finally:
            attention._prefill_flash = mine

    arms = [
        ("bare forward", lambda: model(ids)),
        ("attention, this checkout", lambda: capture_with(mine)),
        (f"attention, {args.base_rev}", lambda: capture_with(base)),
    ]
    with torch.inference_mode():
        run_capture(model, ids[:, :256], tok, info=info, attention=True)  # warm-up
    received = {}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in arms}
    sums: dict[str, list[float]] = {name: [] for name, _ in arms[1:]}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, run in arms if r % 2 == 0 else arms[::-1]:
            with torch.inference_mode():
                COLUMN_SUMS[0] = 0.0
                c, t = time.process_time(), time.perf_counter()
                out = run()
                times[name].append((time.process_time() - c, time.perf_counter() - t))
                if name in sums:
                    sums[name].append(COLUMN_SUMS[0])
                    received[name] = out.snapshot.attention_received
                del out
            print(f"{name}: {times[name][-1][0]:.1f} s CPU, {times[name][-1][1]:.1f} s wall", file=sys.stderr)
    loads.append(os.getloadavg()[0])
    print(report(args, times, sums, loads, received))


def report(args, times, sums, loads, received) -> str:
    cpu = {k: statistics.median(c for c, _ in v) for k, v in times.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in times.items()}
    names = list(times)
    lines = [
        f"Command: `KVSCOPE_GSM8K=../shared/data/gsm8k/test.jsonl OMP_NUM_THREADS=1 python benchmarks/capture_ab.py "
        f"--base-rev {args.base_rev} --tokens {args.tokens} --rounds {args.rounds}`; torch threads "
        f"{torch.get_num_threads()}; {args.tokens} tokens; 1-minute load average at each round's start and at "
        f"the end: {', '.join(f'{x:.1f}' for x in loads)} (2 cores).",
        "",
        "| arm | CPU s (median) | CPU s per round | wall s (median) | CPU ÷ bare forward | column sums, CPU s "
        "per round |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in names:
        per = ", ".join(f"{c:.1f}" for c, _ in times[k])
        col = ", ".join(f"{c:.2f}" for c in sums.get(k, [])) or "-"
        lines.append(f"| {k} | {cpu[k]:.1f} | {per} | {wall[k]:.1f} | {cpu[k] / cpu[names[0]]:.2f}× | {col} |")
    first, second = received[names[1]], received[names[2]]
    same = torch.allclose(first, second, rtol=1e-5, atol=1e-5)
    exact = torch.equal(first, second)
    diff = float((first - second).abs().max())
    lines += [
        "",
        f"This checkout over {args.base_rev}, attention capture: **{cpu[names[1]] / cpu[names[2]]:.2f}×** the CPU "
        f"time; column sums: **{statistics.median(sums[names[1]]) / statistics.median(sums[names[2]]):.2f}×**. "
        f"Attention received at all {args.tokens} positions of every layer, both ways: identical bit for bit: "
        f"{exact}; equal to float rounding: {same} (largest difference {diff:.2e}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
