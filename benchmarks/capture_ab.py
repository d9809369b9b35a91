"""Benchmark: attention capture, this checkout's recording attention against an older commit's, in one process.

On a loaded machine, fresh processes started minutes apart see different loads, so their wall times cannot
be compared (``capture.py --base``). Here one process loads the embedded model once and alternates three
arms per round: a bare ``model(ids)``, ``run_capture(attention=True)`` with this checkout's fast path
(``kvscope.attention._prefill_flash``), and the same with the older commit's ``_prefill_flash`` (read with
``git show REV:kvscope/attention.py``; the rest of the capture is this checkout's, so only the recording
attention differs). Each arm reports the process CPU time (user + system) and the wall time of its run; the
order of the arms swaps between rounds. One torch thread.

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


def old_prefill_flash(rev: str):
    """The ``_prefill_flash`` of ``kvscope/attention.py`` at ``rev``, executed in that module's namespace."""
    import kvscope.attention as mod

    source = subprocess.run(
        ["git", "show", f"{rev}:kvscope/attention.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    namespace = dict(vars(mod))
    exec(compile(source, f"{rev}:kvscope/attention.py", "exec"), namespace)
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
        received = [capture_with(fn, ids[:, :1024]).snapshot.attention_received for fn in (mine, base)]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in arms}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, run in arms if r % 2 == 0 else arms[::-1]:
            with torch.inference_mode():
                c, t = time.process_time(), time.perf_counter()
                out = run()
                times[name].append((time.process_time() - c, time.perf_counter() - t))
                del out
            print(f"{name}: {times[name][-1][0]:.1f} s CPU, {times[name][-1][1]:.1f} s wall", file=sys.stderr)
    loads.append(os.getloadavg()[0])
    print(report(args, times, loads, received))


def report(args, times, loads, received) -> str:
    cpu = {k: statistics.median(c for c, _ in v) for k, v in times.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in times.items()}
    names = list(times)
    lines = [
        f"Command: `KVSCOPE_GSM8K=../shared/data/gsm8k/test.jsonl OMP_NUM_THREADS=1 python benchmarks/capture_ab.py "
        f"--base-rev {args.base_rev} --tokens {args.tokens} --rounds {args.rounds}`; torch threads "
        f"{torch.get_num_threads()}; {args.tokens} tokens; 1-minute load average at each round's start and at "
        f"the end: {', '.join(f'{x:.1f}' for x in loads)} (2 cores).",
        "",
        "| arm | CPU s (median) | CPU s per round | wall s (median) | CPU ÷ bare forward |",
        "|---|---:|---:|---:|---:|",
    ]
    for k in names:
        per = ", ".join(f"{c:.1f}" for c, _ in times[k])
        lines.append(f"| {k} | {cpu[k]:.1f} | {per} | {wall[k]:.1f} | {cpu[k] / cpu[names[0]]:.2f}× |")
    same = torch.allclose(received[0], received[1], rtol=1e-5, atol=1e-5)
    diff = float((received[0] - received[1]).abs().max())
    lines += [
        "",
        f"This checkout over {args.base_rev}, attention capture: **{cpu[names[1]] / cpu[names[2]]:.2f}×** the CPU "
        f"time. Attention received on the first 1,024 tokens, both ways: equal to float rounding: {same} (largest "
        f"difference {diff:.2e}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
