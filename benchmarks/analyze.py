"""Benchmark: wall time and peak RSS of ``kvscope analyze`` on the embedded SmolLM2-135M.

Cases: the built-in default prompt (~213 tokens), drawn with 1 and with 2 figure processes, and a
2048-token prompt (GSM8K test questions, concatenated and cut at 2048 tokens); each prompt also with
the capture on one torch thread (``--threads 1``; the analyses always run on one). Each run is a fresh
``kvscope analyze --json`` subprocess with a warm model cache; its step timings (load, capture,
analysis, plotting, report) come from its own JSON output, and its peak RSS from ``ru_maxrss`` of the
largest process of that run (the CLI; figure workers are smaller). Medians over ``--repeats`` runs.

Usage: ``python benchmarks/analyze.py [--repeats 3] [--out benchmarks/results/analyze.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
KVSCOPE = str(Path(sys.executable).with_name("kvscope"))
STEPS = ("load", "capture", "analysis", "plotting", "report")


def long_prompt(n: int = 2048) -> str:
    """GSM8K questions joined until ``n`` tokens, cut back to exactly ``n`` token ids and decoded."""
    from capture import prompt_ids  # the same GSM8K prompt builder as benchmarks/capture.py

    from kvscope.models import load_model

    _, tok, _ = load_model("embedded")
    return tok.decode(prompt_ids(tok, n)[0])


def child(argv: list[str]) -> None:
    """Run one analyze subprocess; print its JSON summary with wall time and peak RSS added."""
    t0 = time.perf_counter()
    proc = subprocess.run([KVSCOPE, "analyze", "--json", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    summary = json.loads(proc.stdout)
    summary["wall_s"] = wall
    summary["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(summary))


def one_run(argv: list[str]) -> dict:
    """A fresh middle process per run, so ``RUSAGE_CHILDREN`` holds this run only."""
    out = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def case(name: str, argv: list[str], repeats: int) -> dict:
    runs = [one_run(argv) for _ in range(repeats)]
    med = lambda key: statistics.median(r["seconds"].get(key, 0.0) for r in runs)  # noqa: E731
    return {"case": name, "tokens": runs[0]["tokens"], "wall": statistics.median(r["wall_s"] for r in runs),
            "steps": {s: med(s) for s in STEPS}, "rss": statistics.median(r["peak_rss_mib"] for r in runs),
            "figures": runs[0]["figures"], "runs": len(runs)}


def table(rows: list[dict], repeats: int, threads: int, noisy: str) -> str:
    lines = [
        "# kvscope analyze: wall time and peak memory", "",
        f"Embedded SmolLM2-135M-Instruct, float32, CPU, torch threads {threads}, warm model cache; "
        f"median of {repeats} fresh-process runs per case. {noisy}", "",
        "| case | tokens | figures | wall s | load | capture | analysis | plotting | report | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["steps"]
        lines.append(f"| {r['case']} | {r['tokens']} | {r['figures']} | {r['wall']:.1f} | {s['load']:.1f} | "
                     f"{s['capture']:.1f} | {s['analysis']:.1f} | {s['plotting']:.1f} | {s['report']:.2f} | "
                     f"{r['rss']:.0f} |")
    by = {r["case"]: r for r in rows}
    one, two = by.get("default, --jobs 1"), by.get("default, --jobs 2")
    if one and two:
        lines += ["", f"Speed-up of drawing with 2 processes over 1 (same session; below 1 = slower): plotting "
                  f"{one['steps']['plotting'] / max(two['steps']['plotting'], 1e-9):.2f}x, "
                  f"whole run {one['wall'] / max(two['wall'], 1e-9):.2f}x."]
    for size in ("default", "2048 tokens"):
        a, b = by.get(f"{size}, --jobs 2"), by.get(f"{size}, --jobs 2 --threads 1")
        if a and b:
            lines += [f"Speed-up of the capture on 1 torch thread over the default 2 ({size}): "
                      f"{a['steps']['capture'] / max(b['steps']['capture'], 1e-9):.2f}x."]
    lines += ["", "Wall time includes Python start-up and imports, which the step columns do not.",
              "Targets: default run < 30 s; 2048 tokens < 2 min and < 4 GiB.", "",
              "Reproduce: `OMP_NUM_THREADS=2 .venv/bin/python benchmarks/analyze.py --repeats "
              f"{repeats} --out benchmarks/results/analyze.md`", ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--noisy", default="", help="A note about machine load, printed with the table.")
    args = ap.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        long_file = Path(tmp) / "long.txt"
        long_file.write_text(long_prompt(), encoding="utf-8")
        long = ["--prompt-file", str(long_file)]
        rows = [case("default, --jobs 1", ["--out", f"{tmp}/a", "--jobs", "1"], args.repeats),
                case("default, --jobs 2", ["--out", f"{tmp}/b", "--jobs", "2"], args.repeats),
                case("default, --jobs 2 --threads 1", ["--out", f"{tmp}/c", "--jobs", "2", "--threads", "1"],
                     args.repeats),
                case("2048 tokens, --jobs 2", [*long, "--out", f"{tmp}/d", "--jobs", "2"], args.repeats),
                case("2048 tokens, --jobs 2 --threads 1", [*long, "--out", f"{tmp}/e", "--jobs", "2", "--threads", "1"],
                     args.repeats)]
    text = table(rows, args.repeats, torch.get_num_threads(), args.noisy)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
