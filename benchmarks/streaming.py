"""Benchmark: the decode-time task ``kvscope bench --task streaming`` (StreamingLLM Fig. 3, Xiao et al., ICLR
2024) on the embedded SmolLM2-135M: wall time and peak resident memory of the whole command (model load
included), one torch thread, and the table it prints.

Each repeat runs the command in a fresh process (``OMP_NUM_THREADS=1``); its wall time and peak RSS come
from ``os.wait4``'s resource usage. Medians and min-max over ``--repeats``, the 1-minute load average after
each run, and the last run's rows go to ``benchmarks/results/streaming.md``.

``--figure PATH`` also copies the last run's ``streaming_ppl.png`` there (the README's picture).

``--speed`` measures instead, in this process, the task's chunked feeding against the one-token-per-forward
loop it replaced (``run_config(chunk=1)``): for each default strategy at ``--speed-budget`` on 4 streams x
``--speed-tokens`` tokens, the largest NLL difference and the CPU seconds of each; then, for h2o (the
slowest per step), ``--speed-repeats`` alternating rounds of chunk 1 and each of ``--speed-chunks``, medians
and min-max of CPU and wall seconds. It rewrites only its own section of the results file.

Usage: ``python benchmarks/streaming.py [--repeats 1] [--out benchmarks/results/streaming.md] [-- bench options]``
e.g. ``python benchmarks/streaming.py -- --budgets 64,128 --samples 2``; ``python benchmarks/streaming.py --speed``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


RUN_HEADING = "## kvscope bench --task streaming:"
SPEED_HEADING = "## Chunked feeding against one token per forward:"


def run_once(extra: list[str], out: Path) -> tuple[float, float, float, float]:
    """``(wall seconds, peak RSS MiB, 1-min load average after, CPU seconds)`` of one ``kvscope bench --task
    streaming``."""
    cmd = [sys.executable, "-m", "kvscope", "bench", "--task", "streaming", *extra, "--out", str(out), "--force"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return wall, usage.ru_maxrss / 1024, os.getloadavg()[0], usage.ru_utime + usage.ru_stime


def spread(values: list[float], fmt: str) -> tuple[str, str]:
    return format(statistics.median(values), fmt), f"{format(min(values), fmt)}-{format(max(values), fmt)}"


def report(extra: list[str], runs: list[tuple[float, float, float, float]], doc: dict) -> str:
    walls, rss, loads, cpus = zip(*runs)
    s = doc["settings"]
    shown = " ".join(["benchmarks/streaming.py", f"--repeats {len(runs)}", *(["--", *extra] if extra else [])])
    lines = [
        f"{RUN_HEADING} decode-time compression judged ({doc['model']['name']}, float32, CPU)",
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
        "| CPU seconds (user + system) | {} | {} |".format(*spread(list(cpus), ".0f")),
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


def write_section(path: Path, text: str) -> None:
    """Replace the ``## `` section of ``path`` that starts with ``text``'s heading (up to its colon), or add it."""
    key = text.split(":", 1)[0]
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    parts = [p for p in re.split(r"(?m)^(?=## )", old) if p.strip()]
    parts = [text if p.split(":", 1)[0] == key else p for p in parts]
    if not any(p == text for p in parts):
        parts.append(text)
    path.write_text("\n".join(p.rstrip("\n") + "\n" for p in parts), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "streaming.md")
    parser.add_argument("--figure", type=Path, help="copy the last run's streaming_ppl.png here")
    parser.add_argument("--speed", action="store_true", help="chunked feeding against one token per forward")
    parser.add_argument("--speed-tokens", type=int, default=384)
    parser.add_argument("--speed-budget", type=int, default=64)
    parser.add_argument("--speed-repeats", type=int, default=3)
    parser.add_argument("--speed-chunks", default="32,64,128")
    parser.add_argument("extra", nargs="*", help="options passed to kvscope bench (after --)")
    args = parser.parse_args()
    if args.speed:
        from streaming_speed import speed_report

        chunks = [int(c) for c in args.speed_chunks.split(",")]
        text = speed_report(args.speed_tokens, args.speed_budget, chunks, args.speed_repeats)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            runs = [run_once(args.extra, out) for _ in range(args.repeats)]
            doc = json.loads((out / "bench.json").read_text())
            if args.figure:
                shutil.copyfile(out / "streaming_ppl.png", args.figure)
        text = report(args.extra, runs, doc)
    write_section(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
