"""Benchmark: the decode-time task ``kvscope bench --task streaming`` (StreamingLLM Fig. 3, Xiao et al., ICLR
2024) on the embedded SmolLM2-135M: wall time and peak resident memory of the whole command (model load
included), one torch thread, and the table it prints.

Each repeat runs the command in a fresh process (``OMP_NUM_THREADS=1``); its wall time and peak RSS come
from ``os.wait4``'s resource usage. Medians and min-max over ``--repeats``, the 1-minute load average after
each run, and the last run's rows go to ``benchmarks/results/streaming.md``.

Usage: ``python benchmarks/streaming.py [--repeats 1] [--out benchmarks/results/streaming.md] [-- bench options]``
e.g. ``python benchmarks/streaming.py -- --budgets 64,128 --samples 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(extra: list[str], out: Path) -> tuple[float, float, float]:
    """``(wall seconds, peak RSS MiB, 1-min load average after)`` of one ``kvscope bench --task streaming``."""
    cmd = [sys.executable, "-m", "kvscope", "bench", "--task", "streaming", *extra, "--out", str(out), "--force"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return wall, usage.ru_maxrss / 1024, os.getloadavg()[0]


def spread(values: list[float], fmt: str) -> tuple[str, str]:
    return format(statistics.median(values), fmt), f"{format(min(values), fmt)}-{format(max(values), fmt)}"


def report(extra: list[str], runs: list[tuple[float, float, float]], doc: dict) -> str:
    walls, rss, loads = zip(*runs)
    s = doc["settings"]
    shown = " ".join(["benchmarks/streaming.py", f"--repeats {len(runs)}", *(["--", *extra] if extra else [])])
    lines = [
        f"## kvscope bench --task streaming: decode-time compression judged ({doc['model']['name']}, float32, CPU)",
        "",
        f"Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python {shown}`. torch threads: {doc['torch_threads']}. "
        f"{len(runs)} run(s) of `kvscope bench --task streaming {' '.join(extra)}`, each a fresh process (model load "
        f"included); 1-min load average after each: {', '.join(f'{x:.1f}' for x in loads)} on 2 cores (a shared "
        "machine: absolute times are noisy).",
        f"Streams: {s['samples']} x {s['context_tokens']} tokens; budgets {s['budgets']}; strategies "
        f"{', '.join(s['strategies'])} and dense.",
        "",
        "| measure | median | min-max |",
        "|---|---|---|",
        "| wall seconds | {} | {} |".format(*spread(list(walls), ".0f")),
        "| peak RSS (MiB) | {} | {} |".format(*spread(list(rss), ".0f")),
        "",
        "| configuration | log-ppl after the budget [95 %] | difference to dense [95 %] | ppl ratio | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lp, d = r["log_ppl"], r["delta"]
        diff = "-" if r["budget"] is None else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
        lines.append(
            f"| {r['config']} | {lp[0]:.3f} [{lp[1]:.3f}, {lp[2]:.3f}] | {diff} | {r['ppl_ratio']:.3f} "
            f"| {r['seconds']:.0f} |"
        )
    lines += ["", f"Intervals: {doc['intervals']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "streaming.md")
    parser.add_argument("extra", nargs="*", help="options passed to kvscope bench (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        runs = [run_once(args.extra, out) for _ in range(args.repeats)]
        doc = json.loads((out / "bench.json").read_text())
    text = report(args.extra, runs, doc)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
