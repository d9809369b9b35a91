"""Benchmark: wall time, CPU time and peak RSS of ``kvscope analyze`` on the embedded SmolLM2-135M.

Two checkouts side by side: ``--new`` (this one by default) and ``--base``, a previous commit's (e.g.
``git worktree add /work/wt/old7281930 7281930``), each run as a fresh ``python -m kvscope analyze --json
--threads 1`` subprocess with ``PYTHONPATH`` at the checkout and a warm model cache, the two alternating run by
run (the first of each pair swapped every repeat) so both see the same machine load. Cases:

- the built-in default prompt (213 tokens), ``--repeats`` runs each;
- ``--prompts default``: the built-in prompt set, aggregated over prompts, ``--many-repeats`` runs each.

Reported: medians and min-max of wall and CPU time (user + system of the subprocess), peak RSS
(``ru_maxrss``), the 1-minute load average at the start of each run, the ratios of the medians, and whether
metrics.json (its numbers and texts) is the same in every run and equal to the base's.

Usage: ``python benchmarks/analyze.py --base /work/wt/old7281930 [--new DIR] [--repeats 3] [--many-repeats 1]``
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


def imported_from(root: str, env: dict, cwd: str) -> None:
    """Fail unless ``python`` in ``cwd`` with ``env`` imports the ``kvscope`` of ``root``: ``python -m`` puts
    its working directory first on ``sys.path``, so a run started inside another checkout measured that
    checkout's code whatever ``PYTHONPATH`` said (every side-by-side number of this file before the fix)."""
    code = "import kvscope; print(kvscope.__file__)"
    where = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    if Path(where.stdout.strip()).resolve().parents[1] != Path(root).resolve():
        raise SystemExit(f"{root}: python imports kvscope from {where.stdout.strip()}")


def child(root: str, argv: list[str]) -> None:
    """Run one analyze subprocess (in an empty folder, so that the ``kvscope`` of ``root`` is imported);
    print its JSON summary with wall time and peak RSS added."""
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        imported_from(root, env, tmp)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
            cwd=tmp,
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr)
        files = sorted((Path(tmp) / "out").glob("*.png")) + sorted((Path(tmp) / "out").glob("*.svg"))
        figure_hashes = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
        metrics = json.loads((Path(tmp) / "out" / "metrics.json").read_text())
    summary = json.loads(proc.stdout)
    summary["wall_s"] = wall
    summary["figure_sha256"] = figure_hashes
    summary["metrics"] = hashlib.sha256(json.dumps(_numbers(metrics), sort_keys=True).encode()).hexdigest()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["peak_rss_mib"] = usage.ru_maxrss / 1024
    # less sensitive to other jobs than wall time; the import check's process is not counted
    summary["cpu_s"] = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
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
        "cpu_spread": (min(r["cpu_s"] for r in runs), max(r["cpu_s"] for r in runs)),
        "rss": max(r["peak_rss_mib"] for r in runs),
        "figures": runs[0]["figures"],
        "runs": len(runs),
        "load": statistics.median(r["load"] for r in runs),
    }


def _row(r: dict) -> str:
    tokens = r["tokens"] if isinstance(r["tokens"], int) else f"{len(r['tokens'])} prompts, {sum(r['tokens'])} total"
    return (
        f"| {r['case']} | {tokens} | {r['figures']} | {r['runs']} | {r['wall']:.1f} | "
        f"{r['spread'][0]:.1f}-{r['spread'][1]:.1f} | {r['cpu']:.1f} | "
        f"{r['cpu_spread'][0]:.1f}-{r['cpu_spread'][1]:.1f} | {r['rss']:.0f} | {r['load']:.1f} |"
    )


def table(rows: list[dict], speedups: dict, load: str, base: str, new: str, same: str, repeats=3, many=1) -> str:
    lines = [
        "## kvscope analyze: wall time and peak memory",
        "",
        "Embedded SmolLM2-135M-Instruct, float32, CPU, torch threads 1 (`--threads 1`, OMP_NUM_THREADS=1, "
        "MKL_NUM_THREADS=1), warm model cache; each run a fresh `python -m kvscope analyze --json` process, the "
        f"two checkouts alternating run by run. Load average (1 min) {load} on 2 cores shared with other "
        "engineers' jobs: absolute seconds are inflated and noisy, compare the ratios of this run.",
        "",
        "| case | tokens | figures | runs | wall s (median) | min-max | CPU s (median) | min-max | peak RSS MiB "
        "| load (median at start) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[_row(r) for r in rows],
        "",
    ]
    for case, (wall, cpu) in speedups.items():
        lines.append(
            f"- {case}: {new} is **{wall:.2f}x** as fast as {base} by median wall time and **{cpu:.2f}x** by "
            "median CPU time (user + system; above 1 = faster)."
        )
    lines += [
        f"- metrics.json ({same})",
        "",
        f"Targets (issue 24): the single-prompt run at least 1.4x as fast as {base}; `--prompts default` at most 60 s.",
        "",
        f"Reproduce: `git worktree add /work/wt/old{base} {base} && OMP_NUM_THREADS=1 python benchmarks/analyze.py "
        f"--base /work/wt/old{base} --base-name {base} --repeats {repeats} --many-repeats {many}`",
        "",
    ]
    return "\n".join(lines)


def _numbers(metrics: dict) -> dict:
    """metrics.json without the fields that name the version or list files (the numbers and texts)."""
    return {k: v for k, v in metrics.items() if k not in ("kvscope_version", "figures")}


def alternate(args: argparse.Namespace, argv: list[str], repeats: int) -> tuple[list[dict], list[dict]]:
    """``repeats`` runs of each checkout, alternating, the first checkout swapped every repeat."""
    new, old = [], []
    for i in range(repeats):
        order = ((new, args.new), (old, args.base)) if i % 2 == 0 else ((old, args.base), (new, args.new))
        for runs, root in order:
            load = os.getloadavg()[0]
            runs.append({**one_run(str(root), argv), "load": load})
            r = runs[-1]
            print(f"{root} {argv} wall {r['wall_s']:.1f} cpu {r['cpu_s']:.1f} load {load:.1f}", flush=True)
    return new, old


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="checkout of the previous commit")
    ap.add_argument("--base-name", default="7281930")
    ap.add_argument("--new", type=Path, default=ROOT, help="checkout measured against it [this one]")
    ap.add_argument("--new-name", default="this branch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--many-repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "analyze.md")
    args = ap.parse_args()
    load0 = f"{os.getloadavg()[0]:.1f}"
    new, old = alternate(args, [], args.repeats)
    many_new, many_old = alternate(args, ["--prompts", "default"], args.many_repeats)
    load = f"{load0} at the start and {os.getloadavg()[0]:.1f} at the end"
    rows = [
        summarize(f"default prompt, {args.new_name}", new),
        summarize(f"default prompt, {args.base_name}", old),
        summarize(f"--prompts default, {args.new_name}", many_new),
        summarize(f"--prompts default, {args.base_name}", many_old),
    ]
    speedups = {
        "default prompt": (rows[1]["wall"] / rows[0]["wall"], rows[1]["cpu"] / rows[0]["cpu"]),
        "--prompts default": (rows[3]["wall"] / rows[2]["wall"], rows[3]["cpu"] / rows[2]["cpu"]),
    }
    same = all(r["metrics"] == new[0]["metrics"] for r in new) and all(
        r["metrics"] == many_new[0]["metrics"] for r in many_new
    )
    equal = new[0]["metrics"] == old[0]["metrics"] and many_new[0]["metrics"] == many_old[0]["metrics"]
    note = f"numbers and texts): the same in every run of {args.new_name}: {same}; equal to {args.base_name}'s: {equal}"
    text = table(rows, speedups, load, args.base_name, args.new_name, note, args.repeats, args.many_repeats)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
