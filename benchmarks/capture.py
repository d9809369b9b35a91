"""Benchmark: capture time and peak RSS against a bare forward, and the warm embedded-model load.

Each measurement runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own.
Modes, all on the embedded SmolLM2-135M (float32, CPU):

- ``forward``: a bare ``model(ids)`` (sdpa attention, full logits), what a user would run;
- ``capture``: ``run_capture`` without attention (K/V copied out as float32);
- ``attention``: ``run_capture(attention=True)``: attention received per key, chunked.

Usage: ``python benchmarks/capture.py [--sizes 512 2048 8192] [--repeats 3] [--threads N] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def prompt_ids(tokenizer, n: int):
    """``[1, n]`` token ids of GSM8K questions, concatenated until ``n`` tokens."""
    import torch

    text, ids = [], []
    with open(GSM8K, encoding="utf-8") as f:
        for line in f:
            text.append(json.loads(line)["question"])
            if len(text) % 20 == 0:
                ids = tokenizer("\n\n".join(text)).input_ids
                if len(ids) >= n:
                    break
    return torch.tensor([ids[:n]])


def worker(mode: str, n: int, repeats: int) -> dict:
    """Time ``repeats`` runs of ``mode`` after one warm-up; return times and this process's peak RSS."""
    import resource

    t0 = time.perf_counter()
    import torch
    import transformers  # noqa: F401

    from kvscope.capture.capturing import run_capture
    from kvscope.models import load_model

    if os.environ.get("KVSCOPE_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["KVSCOPE_BENCH_THREADS"]))
    t1 = time.perf_counter()
    model, tok, info = load_model("embedded")
    load_s = time.perf_counter() - t1
    import_s = t1 - t0
    ids = prompt_ids(tok, n)
    run = {
        "forward": lambda: model(ids),
        "capture": lambda: run_capture(model, ids, tok, info=info),
        "attention": lambda: run_capture(model, ids, tok, info=info, attention=True),
    }[mode]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t = time.perf_counter()
            out = run()
            if i:
                times.append(time.perf_counter() - t)
            del out
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {
        "mode": mode,
        "n": n,
        "times": times,
        "peak_rss_gib": rss,
        "load_s": load_s,
        "import_s": import_s,
        "threads": torch.get_num_threads(),
    }


def spawn(mode: str, n: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, str(n), "--repeats", str(repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict], loads: list[float], imports: list[float], repeats: int, cmd: str) -> str:
    threads = results[0]["threads"]
    lines = [
        "## Capture (`benchmarks/capture.py`)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Embedded SmolLM2-135M, float32, CPU, torch threads = {threads}, median of {repeats} runs after a "
        "warm-up, each mode in its own process (peak RSS = that whole process: model + run).",
        "",
        "| tokens | bare forward s | capture s | capture+attention s | attention ÷ forward | "
        "peak RSS forward GiB | peak RSS capture GiB | peak RSS attention GiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["mode"], r["n"]): r for r in results}
    for n in sorted({r["n"] for r in results}):
        f, c, a = (by[(m, n)] for m in ("forward", "capture", "attention"))
        med = {k: statistics.median(v["times"]) for k, v in (("f", f), ("c", c), ("a", a))}
        lines.append(
            f"| {n} | {med['f']:.2f} | {med['c']:.2f} | {med['a']:.2f} | {med['a'] / med['f']:.2f}× | "
            f"{f['peak_rss_gib']:.2f} | {c['peak_rss_gib']:.2f} | {a['peak_rss_gib']:.2f} |"
        )
    lines += [
        "",
        f'Warm embedded-model load (from the safetensors cache, `load_model("embedded")`): median '
        f"{statistics.median(loads):.2f} s over {len(loads)} processes (min {min(loads):.2f}, "
        f"max {max(loads):.2f}); importing torch and transformers first takes a further median "
        f"{statistics.median(imports):.2f} s in a fresh process.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "N"))
    ap.add_argument("--sizes", nargs="+", type=int, default=[512, 2048, 8192])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each worker [torch's default]")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "capture.md")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeats)))
        return
    if args.threads:
        os.environ["KVSCOPE_BENCH_THREADS"] = str(args.threads)
    results = []
    for n in args.sizes:
        for mode in ("forward", "capture", "attention"):
            results.append(spawn(mode, n, args.repeats))
            print(
                f"{mode:9s} n={n:5d} median {statistics.median(results[-1]['times']):.2f} s "
                f"rss {results[-1]['peak_rss_gib']:.2f} GiB",
                file=sys.stderr,
            )
    loads = [r["load_s"] for r in results]
    imports = [r["import_s"] for r in results]
    cmd = "python benchmarks/capture.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(results, loads, imports, args.repeats, cmd.strip()), encoding="utf-8")
    print(args.out.read_text())


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
