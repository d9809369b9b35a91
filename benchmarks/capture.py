"""Benchmark: capture time and peak RSS against a bare forward, and the warm embedded-model load.

Each measurement runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own.
Modes, all on the embedded SmolLM2-135M (float32, CPU):

- ``forward``: a bare ``model(ids)`` (sdpa attention, full logits), what a user would run;
- ``capture``: ``run_capture`` without attention (K/V copied out as float32);
- ``attention``: ``run_capture(attention=True)``: attention received per key, chunked.

Usage: ``python benchmarks/capture.py [--sizes 512 2048 8192] [--repeats 3] [--threads N] [--out FILE.md]``

Side by side with an older checkout (``--base DIR``, e.g. ``git worktree add /tmp/before 968cf5c``): per size,
``--repeats`` rounds of three fresh processes, the bare forward, this checkout's attention capture and the
base's (its ``kvscope`` first on ``PYTHONPATH``), their order alternating between rounds; each process warms
up on 256 tokens and times one run. The table gives medians and min-max of the rounds, both ratios to the
bare forward and the 1-minute load average around each round.
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
GSM8K = Path(os.environ.get("KVSCOPE_GSM8K", ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"))


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


def worker(mode: str, n: int, repeats: int, warm: int | None = None) -> dict:
    """Time ``repeats`` runs of ``mode`` after one warm-up (on ``warm`` tokens, default ``n``); return times
    and this process's peak RSS."""
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
    warm_ids = ids[:, :warm] if warm else ids
    run = {
        "forward": lambda x: model(x),
        "capture": lambda x: run_capture(model, x, tok, info=info),
        "attention": lambda x: run_capture(model, x, tok, info=info, attention=True),
    }[mode]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t = time.perf_counter()
            out = run(ids if i else warm_ids)
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


def spawn(mode: str, n: int, repeats: int, base: Path | None = None, warm: int | None = None) -> dict:
    """Run one worker process; with ``base`` its ``kvscope`` is imported from that checkout."""
    cmd = [sys.executable, __file__, "--worker", mode, str(n), "--repeats", str(repeats)]
    cmd += ["--warm", str(warm)] if warm else []
    env = dict(os.environ, PYTHONPATH=str(base or ROOT))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def side_by_side(sizes: list[int], rounds: int, base: Path) -> tuple[list[dict], list[tuple[float, float]]]:
    """``rounds`` rounds per size of forward / attention (this checkout) / attention (``base``), the order
    alternating; returns every result (``arm`` added) and the 1-minute load average before and after each."""
    arms = [("forward", None, "forward"), ("attention", None, "attention"), ("attention", base, "attention (base)")]
    results, loads = [], []
    for n in sizes:
        for r in range(rounds):
            before = os.getloadavg()[0]
            for mode, root, arm in arms if r % 2 == 0 else arms[::-1]:
                results.append({**spawn(mode, n, 1, root, warm=256), "arm": arm})
                print(f"{arm:17s} n={n:5d} {results[-1]['times'][0]:.2f} s", file=sys.stderr, flush=True)
            loads.append((before, os.getloadavg()[0]))
    return results, loads


def side_table(results: list[dict], loads: list[tuple[float, float]], rounds: int, base: Path, cmd: str) -> str:
    threads = results[0]["threads"]
    lines = [
        "## Capture with attention received, side by side with the code before (`benchmarks/capture.py --base`)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Embedded SmolLM2-135M, float32, CPU, torch threads = {threads}; {rounds} round(s) per size, each arm a "
        f"fresh process (warm-up on 256 tokens, one timed run), the order alternating between rounds; base = "
        f"`{base}`. Cells: median [min, max] seconds. 1-minute load average around the rounds: "
        + ", ".join(f"{a:.1f}->{b:.1f}" for a, b in loads)
        + " (2 cores).",
        "",
        "| tokens | bare forward s | attention s, this checkout | attention s, base | this ÷ forward | "
        "base ÷ forward | this ÷ base | peak RSS GiB (this, base) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sorted({r["n"] for r in results}):
        mine = [r for r in results if r["n"] == n]
        t = {a: [r["times"][0] for r in mine if r["arm"] == a] for a in ("forward", "attention", "attention (base)")}
        rss = {a: max(r["peak_rss_gib"] for r in mine if r["arm"] == a) for a in t}
        med = {a: statistics.median(v) for a, v in t.items()}
        cell = {a: f"{med[a]:.2f} [{min(v):.2f}, {max(v):.2f}]" for a, v in t.items()}
        lines.append(
            f"| {n} | {cell['forward']} | {cell['attention']} | {cell['attention (base)']} | "
            f"{med['attention'] / med['forward']:.2f}× | {med['attention (base)'] / med['forward']:.2f}× | "
            f"{med['attention'] / med['attention (base)']:.2f}× | "
            f"{rss['attention']:.2f}, {rss['attention (base)']:.2f} |"
        )
    return "\n".join(lines + [""])


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
    ap.add_argument("--base", type=Path, help="an older checkout to time side by side (attention capture)")
    ap.add_argument("--warm", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeats, args.warm)))
        return
    if args.threads:
        os.environ["KVSCOPE_BENCH_THREADS"] = str(args.threads)
    cmd = "python benchmarks/capture.py " + " ".join(sys.argv[1:])
    if args.base:
        results, loads = side_by_side(args.sizes, args.repeats, args.base.resolve())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(side_table(results, loads, args.repeats, args.base, cmd.strip()), encoding="utf-8")
        print(args.out.read_text())
        return
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
