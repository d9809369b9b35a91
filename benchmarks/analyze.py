"""Benchmark: wall time and peak RSS of ``kvscope analyze`` on the embedded SmolLM2-135M.

Cases, each a fresh ``python -m kvscope analyze --json --threads 1`` subprocess with a warm model cache:

- the built-in default prompt (213 tokens) with this checkout and with a previous commit's checkout
  (``--base DIR``, e.g. ``git archive a2e5e01 | tar -x -C /tmp/base``), run alternately so both see the
  same machine load; the ratio of their median wall times is reported;
- ``--prompts default``: the built-in prompt set, aggregated over prompts.

Peak RSS is ``ru_maxrss`` of the subprocess; medians over ``--repeats`` runs.

Usage: ``python benchmarks/analyze.py --base /tmp/base [--repeats 3] [--out benchmarks/results/analyze.md]``
"""

from __future__ import annotations

import argparse
import hashlib
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


def child(root: str, argv: list[str]) -> None:
    """Run one analyze subprocess; print its JSON summary with wall time and peak RSS added."""
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "kvscope",
                "analyze",
                "--json",
                "--threads",
                "1",
                "--out",
                str(Path(tmp) / "out"),
                *argv,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr)
        files = sorted((Path(tmp) / "out").glob("*.png")) + sorted((Path(tmp) / "out").glob("*.svg"))
        figure_hashes = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    summary = json.loads(proc.stdout)
    summary["wall_s"] = wall
    summary["figure_sha256"] = figure_hashes
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["peak_rss_mib"] = usage.ru_maxrss / 1024
    summary["cpu_s"] = usage.ru_utime + usage.ru_stime  # less sensitive to other jobs than wall time
    print(json.dumps(summary))


def one_run(root: str, argv: list[str]) -> dict:
    """A fresh middle process per run, so ``RUSAGE_CHILDREN`` holds this run only."""
    out = subprocess.run([sys.executable, __file__, "--child", root, *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(name: str, runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {
        "case": name,
        "tokens": runs[0]["tokens"],
        "wall": statistics.median(walls),
        "cpu": statistics.median(r["cpu_s"] for r in runs),
        "spread": (min(walls), max(walls)),
        "rss": max(r["peak_rss_mib"] for r in runs),
        "figures": runs[0]["figures"],
        "runs": len(runs),
    }


def table(rows: list[dict], ratio: float, load: str, base: str, repeats: int, same: bool) -> str:
    lines = [
        "## kvscope analyze: wall time and peak memory",
        "",
        f"Embedded SmolLM2-135M-Instruct, float32, CPU, torch threads 1 (`--threads 1`, OMP_NUM_THREADS=1), "
        f"warm model cache; median of {repeats} fresh-process runs per case (min-max in brackets), the two "
        f"single-prompt cases run alternately. Load average during the run: {load} on 2 cores shared with "
        "other engineers' jobs, so absolute times are inflated and noisy; compare rows of this run only.",
        "",
        "| case | tokens | figures | wall s (median) | min-max | CPU s (median) | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tokens = (
            r["tokens"] if isinstance(r["tokens"], int) else f"{len(r['tokens'])} prompts, {sum(r['tokens'])} total"
        )
        lines.append(
            f"| {r['case']} | {tokens} | {r['figures']} | {r['wall']:.1f} | "
            f"{r['spread'][0]:.1f}-{r['spread'][1]:.1f} | {r['cpu']:.1f} | {r['rss']:.0f} |"
        )
    lines += [
        "",
        f"Single-prompt default run, this commit over {base} (same session, alternating): "
        f"**{ratio[0]:.2f}x** the median wall time and **{ratio[1]:.2f}x** the median CPU time "
        "(user + system; above 1 = slower).",
        "",
        f"Figures byte-identical to {base}'s in every run: {same}.",
        "",
        "Targets (issue 24): the single-prompt run at least 1.4x faster than c2d2e57; `--prompts default` at most "
        "60 s and under 4 GiB.",
        "",
        f"Reproduce: `git worktree add /tmp/analyze_base {base} && "
        f"python benchmarks/analyze.py --base /tmp/analyze_base --base-name {base} --repeats {repeats}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="checkout of the previous commit")
    ap.add_argument("--base-name", default="c2d2e57")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--many-repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "analyze.md")
    args = ap.parse_args()
    now, old = [], []
    load0 = f"{os.getloadavg()[0]:.1f}"
    for _ in range(args.repeats):
        now.append(one_run(str(ROOT), []))
        old.append(one_run(args.base, []))
    many = [one_run(str(ROOT), ["--prompts", "default"]) for _ in range(args.many_repeats)]
    load = f"{load0} at the start and {os.getloadavg()[0]:.1f} at the end"
    same = all(r["figure_sha256"] == old[0]["figure_sha256"] for r in now + old)
    rows = [
        summarize("default prompt, this commit", now),
        summarize(f"default prompt, {args.base_name}", old),
        summarize("--prompts default (9 texts), this commit", many),
    ]
    ratio = (rows[0]["wall"] / rows[1]["wall"], rows[0]["cpu"] / rows[1]["cpu"])
    text = table(rows, ratio, load, args.base_name, args.repeats, same)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
