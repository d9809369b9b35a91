"""Benchmarks of ``kvscope bench`` on the embedded SmolLM2-135M (float32, CPU).

``table``: the README's many-sample table. Each task runs as its own ``bench`` call and its outcomes
are saved as soon as it ends (``--work``), so a long run leaves usable results task by task; the
table is then built from every saved outcome with the same code as ``kvscope bench``.

``default``: wall time, CPU time and peak memory of the default ``kvscope bench`` run (no options) in a
child process at one thread; the target is under 10 minutes here. Written to ``bench_default.md``.

``reuse``: forwarded tokens and wall time of bench's one-prefill-per-sample against kvscope's own
``reuse_prefill=False`` (one instrumented prefill per configuration), ``--repeats`` times interleaved,
with the spread; and the speed-up estimated against plain (uninstrumented) prefills.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/bench.py table --samples 50 --context-tokens 500
  OMP_NUM_THREADS=1 python benchmarks/bench.py reuse --reuse-samples 1 --reuse-context 2000 --repeats 3
  OMP_NUM_THREADS=1 python benchmarks/bench.py default
  python benchmarks/bench.py write --samples 50 ...   # rebuild bench.md and the figure from saved runs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from kvscope.bench import bench
from kvscope.bench.sample_runner import Outcome
from kvscope.bench.summary import POOLED, guardrails, summarize_outcomes
from kvscope.models import load_model
from kvscope.prune.engine import build_grid

ROOT = Path(__file__).resolve().parents[1]
TABLE_TASKS = ("passkey", "kv_retrieval", "multi_needle", "text")
REUSE_TASKS = ("passkey", "kv_retrieval", "multi_needle", "variable_tracking")
REUSE_QUANT = ("K8V8", "K4V4", "K2V2", "K4V2", "K2V4")
# 6 strategies (classic and literature ones) x 4 ratios + 5 KIVI specs + baseline: the 30 configurations
REUSE_STRATEGIES = ("knorm", "streaming", "h2o", "snapkv", "tova", "pyramidkv")


CHUNK = 10  # samples saved together, tasks taken in turn, so a stopped run leaves every task partly done


def load_outcomes(work: Path) -> tuple[list[Outcome], list[dict]]:
    outs, meta = [], []
    for f in sorted(work.glob("*.json"), key=lambda p: p.name):
        if f.name.startswith("reuse-"):
            continue
        d = json.loads(f.read_text())
        outs += [Outcome(**o) for o in d["outcomes"]]
        meta.append(d)
    order = {t: i for i, t in enumerate(TABLE_TASKS)}
    outs.sort(key=lambda o: (order.get(o.task, 99), o.sample))
    return outs, meta


def run_chunk(model, tok, info, task: str, first: int, args, configs) -> dict:
    """Samples ``first .. first + CHUNK - 1`` of ``task`` through every configuration."""
    from kvscope.bench.benchmark import assemble, make_samples, run_all

    samples = make_samples(tok, [task], min(args.samples, first + CHUNK), args.context_tokens, args.seed)
    indexed = list(enumerate(samples))[first:]
    t0 = time.perf_counter()
    runs, count = run_all(model, tok, info, indexed, configs, None, False, configs_ratios(args), True, True)
    settings = {"tasks": [task], "samples": args.samples, "context_tokens": args.context_tokens, "seed": args.seed}
    r = assemble([(runs, asdict(count))], configs, {}, info, "embedded", settings, time.perf_counter() - t0, 1)
    return dict(r.to_dict(samples=True), first=first)


def configs_ratios(args) -> list[float]:
    return [float(x) for x in args.ratios.split(",")]


def table_strategies(args) -> list[str] | None:
    """``--strategies`` as a list (None: every registered strategy, the published table)."""
    return args.strategies.split(",") if args.strategies else None


def run_table(args) -> None:
    model, tok, info = load_model("embedded")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    configs = build_grid(table_strategies(args), configs_ratios(args), args.quantize.split(",")).configs
    tasks = args.tasks.split(",")
    for first in range(0, args.samples, CHUNK):
        for task in tasks:
            f = work / f"{task}-{first:03d}.json"
            if f.is_file() or (task == "text" and first > 0):
                continue  # done in an earlier run (text has 8 samples: one chunk)
            d = run_chunk(model, tok, info, task, first, args, configs)
            f.write_text(json.dumps(d, indent=1))
            print(f"{f.name}: {len(d['outcomes'])} outcomes, {d['seconds']:.0f} s", file=sys.stderr, flush=True)
    write_table(args, work)


def strategy_warnings(meta: list[dict]) -> list[str]:
    """The chunks' per-configuration warnings (e.g. a budget below SnapKV's window), one line per
    configuration with its samples summed over chunks and the first chunk's message as the example."""
    seen: dict[str, list] = {}
    for d in meta:
        for w in d.get("warnings", []):
            m = re.match(r"^(\S+@\S+): (.*) \((\d+) samples?\)$", w)
            if m:
                seen.setdefault(m[1], [m[2], 0])[1] += int(m[3])
    return [f"{c}: {msg} ({n} samples in all; budgets vary by sample)" for c, (msg, n) in seen.items()]


def write_table(args, work: Path) -> None:
    outs, meta = load_outcomes(work)
    configs = build_grid(table_strategies(args), configs_ratios(args), args.quantize.split(",")).configs
    names = {o.config for o in outs}
    configs = [c for c in configs if c.name in names]
    rows = summarize_outcomes(outs, configs, seed=args.seed)
    warns = guardrails(rows, outs, []) + strategy_warnings(meta)
    seconds = sum(m["seconds"] for m in meta)
    prefills = sum(m["prefills"] for m in meta)
    n = {t: len({o.sample for o in outs if o.task == t}) for t in dict.fromkeys(o.task for o in outs)}
    cmd = (
        f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench.py table --samples {args.samples} "
        f"--context-tokens {args.context_tokens} --ratios {args.ratios} --quantize {args.quantize}"
        + (f" --strategies {args.strategies}" if args.strategies else "")
    )
    cols = list(rows[0].accuracy)
    short = [f"{t} {k} of {args.samples}" for t, k in n.items() if t != "text" and k < args.samples]
    partial = (
        [
            (
                f"**Partial run** ({', '.join(short)} samples, the rest not yet run): rerun the command, "
                "which resumes from the saved chunks, for the full table."
            ),
            "",
        ]
        if short
        else []
    )
    lines = [
        "## kvscope bench: compression judged on tasks, many samples (SmolLM2-135M, float32, CPU)",
        "",
        (
            f"Reproduce: `{cmd}` (then `kvscope bench` with the same settings gives the same numbers). "
            f"torch threads: {meta[0]['torch_threads'] if meta else 1}; machine shared with other jobs. "
            f"Samples: {', '.join(f'{t} {k}' for t, k in n.items())}; {args.context_tokens} context tokens for "
            f"the generated tasks; seed {args.seed}; {prefills} prefills (one per sample) for "
            f"{len(outs)} sample x configuration runs; {seconds / 60:.0f} minutes in all."
        ),
        "",
        (
            "Cells: value [95 % interval]. Accuracy: Wilson interval; text: mean perplexity ratio to the "
            "uncompressed cache, bootstrap interval. `*` best compressed configuration in the column, `~` tied "
            "with it: not different on the same samples (exact McNemar test, p >= 0.05, for accuracy; paired "
            "bootstrap 95 % interval of the difference containing 0 for perplexity); those are not ranked "
            "against each other. Seconds: this configuration's "
            "compression, question and answer over all its samples (the shared prefills are not in it)."
        ),
        "",
        *partial,
        "| "
        + " | ".join(
            ["configuration"]
            + [f"{'all QA' if c == POOLED else c} acc %" for c in cols]
            + ["text ppl ratio", "KV kept %", "seconds"]
        )
        + " |",
        "|---|" + "---|" * (len(cols) + 3),
    ]
    for r in rows:
        cells = [r.accuracy[c].text() for c in cols] + [r.ppl_ratio.text(False) if r.ppl_ratio else "-"]
        lines.append(f"| {r.config} | " + " | ".join(cells) + f" | {100 * r.kv_fraction:.1f} | {r.seconds:.0f} |")
    lines += [""] + [f"- warning: {w}" for w in warns] + [""]
    if args.figure:
        from types import SimpleNamespace

        from kvscope.bench.bench_figures import bench_pareto
        from kvscope.kit.figures import save_figure

        save_figure(
            bench_pareto(SimpleNamespace(rows=rows, outcomes=outs, model={"name": "SmolLM2-135M"})), args.figure
        )
    out = Path(args.out)
    text = "\n".join(lines) + "\n"
    reuse = out.read_text().split("<!-- reuse -->")[1] if out.is_file() and "<!-- reuse -->" in out.read_text() else ""
    out.write_text(text + ("<!-- reuse -->" + reuse if reuse else ""))
    print(text)


def plain_prefill_seconds(model, tok, task: str, args) -> float:
    """Median seconds of a plain forward over each sample's context (no attention or query capture,
    what a harness without prefix reuse runs per configuration), summed over the samples."""
    from kvscope.bench.benchmark import make_samples
    from kvscope.bench.sample_runner import encode

    total = 0.0
    for sample in make_samples(tok, [task], args.reuse_samples, args.reuse_context, args.seed):
        ids = encode(tok, sample)[0]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(input_ids=ids, use_cache=True)
            times.append(time.perf_counter() - t0)
        total += sorted(times)[1]
    return total


def run_reuse(args) -> None:
    """Each task ``--repeats`` times both ways, the order alternating between repeats."""
    model, tok, _ = load_model("embedded")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for task in args.reuse_tasks.split(","):
        for rep in range(args.reuse_repeats):
            for reuse in (True, False) if rep % 2 == 0 else (False, True):
                f = work / f"reuse-{task}-{'once' if reuse else 'fresh'}-{rep}.json"
                if f.is_file():
                    continue
                t0 = time.perf_counter()
                r = bench(
                    model,
                    tok,
                    tasks=[task],
                    samples=args.reuse_samples,
                    context_tokens=args.reuse_context,
                    strategies=args.reuse_strategies.split(","),
                    quantize=args.reuse_quantize.split(",") if args.reuse_quantize else [],
                    seed=args.seed,
                    reuse_prefill=reuse,
                    model_name="embedded",
                )
                wall = time.perf_counter() - t0
                d = {
                    "wall": wall,
                    "prefills": r.prefills,
                    "prefill_seconds": r.prefill_seconds,
                    "tokens": r.forwarded_tokens,
                    "configs": len(r.rows),
                    "answers": [(o.config, o.answer) for o in r.outcomes],
                    "load": os.getloadavg()[0],
                    "plain_prefill": plain_prefill_seconds(model, tok, task, args) if not reuse else None,
                }
                f.write_text(json.dumps(d))
                print(f"{f.name}: {wall:.0f} s, {r.forwarded_tokens} tokens", file=sys.stderr, flush=True)
    write_reuse(args, work)


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """``median [min, max]`` of ``values`` (just the value when there is one)."""
    v = sorted(values)
    med = statistics.median(v)
    return fmt.format(med) if len(v) == 1 else f"{fmt.format(med)} [{fmt.format(v[0])}, {fmt.format(v[-1])}]"


def reuse_runs(work: Path, task: str) -> list[tuple[dict, dict]]:
    """The (once, fresh) pairs of every repeat of ``task`` saved in ``work``."""
    pairs = []
    for once_file in sorted(work.glob(f"reuse-{task}-once-*.json")):
        fresh_file = once_file.with_name(once_file.name.replace("-once-", "-fresh-"))
        if fresh_file.is_file():
            pairs.append((json.loads(once_file.read_text()), json.loads(fresh_file.read_text())))
    return pairs


def write_reuse(args, work: Path) -> None:
    rows, loads, reps = [], [], 0
    for task in args.reuse_tasks.split(","):
        pairs = reuse_runs(work, task)
        if not pairs:
            continue
        reps = max(reps, len(pairs))
        once, fresh = pairs[0]
        loads += [x["load"] for pair in pairs for x in pair]
        same = all(o["answers"] == f["answers"] for o, f in pairs)
        # a harness without reuse runs a plain forward per configuration: fresh's instrumented prefills
        # replaced by that many plain ones
        plain = [
            f["wall"] - f["prefill_seconds"] + f["prefills"] * f["plain_prefill"] / args.reuse_samples for _, f in pairs
        ]
        rows.append(
            f"| {task} | {once['configs']} | {len(pairs)} | {once['prefills']} / {fresh['prefills']} | "
            f"{once['tokens']:,} / {fresh['tokens']:,} | {spread([o['wall'] for o, _ in pairs])} | "
            f"{spread([f['wall'] for _, f in pairs])} | "
            f"{spread([f['wall'] / o['wall'] for o, f in pairs], '{:.1f}x')} | "
            f"{spread([p / o['wall'] for p, (o, _) in zip(plain, pairs)], '{:.1f}x')} | {'yes' if same else 'NO'} |"
        )
    if not rows:
        return
    quant = args.reuse_quantize or "''"
    cmd = (
        f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench.py reuse --reuse-samples {args.reuse_samples} "
        f"--reuse-context {args.reuse_context} --repeats {args.reuse_repeats} --reuse-tasks {args.reuse_tasks} "
        f"--reuse-strategies {args.reuse_strategies} --reuse-quantize {quant}"
    )
    text = "\n".join(
        [
            "",
            "### Prefill reuse: one prefill per sample against one per configuration",
            "",
            (
                f"Reproduce: `{cmd}`. {args.reuse_samples} sample(s) per task at {args.reuse_context} context tokens; "
                f"{reps} repeat(s), the two ways interleaved (their order alternating); torch threads "
                f"{torch.get_num_threads()}; machine shared with other jobs"
                + (f" (1-minute load average {min(loads):.1f} to {max(loads):.1f} as runs ended)" if loads else "")
                + ". Seconds and speed-ups: median [min, max] over the repeats. **Fresh** is kvscope's own "
                "`reuse_prefill=False`: each of its prefills records attention and queries (instrumented), "
                "heavier than the plain forward a harness without reuse would run, so the measured speed-up "
                "overstates the saving against such a harness. The **plain** column replaces fresh's "
                "instrumented prefills by as many plain forwards (each timed here, median of 3): the "
                "speed-up against a plain harness, estimated. Forwarded tokens (a forward pre-hook) do not "
                "depend on the instrumentation."
            ),
            "",
            (
                "| task | configurations | repeats | prefills (once / fresh) | forwarded tokens (once / fresh) | "
                "seconds once | seconds fresh | speed-up (fresh) | speed-up (plain, estimated) | same answers |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    out = Path(args.out)
    head = out.read_text().split("<!-- reuse -->")[0] if out.is_file() else ""
    out.write_text(head + "<!-- reuse -->\n" + text)
    print(text)


def time_default(root: Path, extra: list[str]) -> dict:
    """One ``kvscope bench --out TMP [extra]`` of the checkout at ``root`` in a child process, one torch thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(root)
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        cmd = [sys.executable, "-m", "kvscope", "bench", "--out", str(Path(tmp) / "out"), *extra]
        r = subprocess.run(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            sys.exit(f"kvscope bench failed (exit {r.returncode}): {r.stderr[-2000:]}")
        wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        d = json.loads((Path(tmp) / "out" / "bench.json").read_text())
        lines = (Path(tmp) / "out" / "samples.jsonl").read_text().splitlines()
        d["verdicts"] = [_verdict(json.loads(line)) for line in lines if line.strip()]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "rss": after.ru_maxrss / 2**20, "load": (load0, load1), "d": d}


def _cells(row: dict) -> dict:
    """A bench.json row without its timings (the part two checkouts must agree on)."""
    return {k: v for k, v in row.items() if "second" not in k}


def _verdict(outcome: dict) -> tuple:
    """One sample x configuration's score (``correct``, or the perplexity), without the answer's text."""
    return outcome["task"], outcome["sample"], outcome["config"], outcome["correct"], outcome["ppl"]


def run_default(args) -> None:
    """Time the default ``kvscope bench`` (``--bench-args`` appended); with ``--base DIR`` also that checkout's,
    alternately (the order swapping between repeats), ``--repeats`` times each, and report the ratio of medians
    and whether both tables hold the same cells."""
    import statistics

    extra = args.bench_args.split()
    roots = [("this checkout", ROOT)] + ([(f"base {args.base}", Path(args.base))] if args.base else [])
    runs: dict[str, list[dict]] = {name: [] for name, _ in roots}
    for rep in range(args.default_repeats):
        for name, root in roots if rep % 2 == 0 else roots[::-1]:
            runs[name].append(time_default(root, extra))
            r = runs[name][-1]
            print(f"{name}: {r['wall']:.0f} s wall, {r['cpu']:.0f} s CPU, load {r['load']}", file=sys.stderr)
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench.py default" + (
        f" --bench-args '{args.bench_args}'" if extra else ""
    )
    lines = [
        "## kvscope bench: the default run's cost (SmolLM2-135M, float32, CPU, 1 torch thread)",
        "",
        f"Reproduce: `{cmd}{' --base DIR' if args.base else ''} --repeats {args.default_repeats}` (it times "
        f"`kvscope bench --out DIR{' ' + args.bench_args if extra else ''}` in a child process per run, the "
        "checkouts alternating). Target: at most 3 minutes at one thread.",
        "",
        "| checkout | samples (one prefill each) | configurations | wall (median, min-max) | CPU user + sys "
        "(median) | peak RSS | load average (start, end) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        walls = [r["wall"] / 60 for r in rs]
        d = rs[0]["d"]
        loads = "; ".join(f"{r['load'][0]:.1f}, {r['load'][1]:.1f}" for r in rs)
        lines.append(
            f"| {name} | {d['prefills']} | {len(d['rows'])} | {statistics.median(walls):.1f} min "
            f"({min(walls):.1f}-{max(walls):.1f}) | {statistics.median(r['cpu'] for r in rs) / 60:.1f} min | "
            f"{max(r['rss'] for r in rs):.2f} GiB | {loads} |"
        )
    if args.base:
        mine, base = (statistics.median(r["wall"] for r in rs) for rs in runs.values())
        cpu_m, cpu_b = (statistics.median(r["cpu"] for r in rs) for rs in runs.values())
        ratio = f"**{base / mine:.2f}x** the wall time, {cpu_b / cpu_m:.2f}x the CPU time"
        mine_rows, base_rows = ([_cells(r) for r in rs[0]["d"]["rows"]] for rs in runs.values())
        same = "the same" if mine_rows == base_rows else "**different**"
        verdicts = [rs[0]["d"]["verdicts"] for rs in runs.values()]
        each = "the same" if verdicts[0] == verdicts[1] else "**different**"
        lines += [
            "",
            f"Base over this checkout: {ratio}. The two checkouts' tables (every row's cells): {same}; every "
            f"sample x configuration's verdict and perplexity (samples.jsonl): {each}.",
        ]
    text = "\n".join(lines + [""])
    Path(args.out).with_name(args.default_out).write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "mode",
        nargs="?",
        default="all",
        choices=["all", "table", "reuse", "default", "write"],
        help="all (what make bench runs): table, reuse, default, then write",
    )
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--context-tokens", type=int, default=500)
    p.add_argument("--tasks", default=",".join(TABLE_TASKS))
    p.add_argument("--ratios", default="0.25,0.5,0.9")
    p.add_argument("--quantize", default="K4V4,K2V2")
    p.add_argument("--strategies", default="", help="table mode: these strategies only (default: every one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse-samples", type=int, default=1, help="reuse mode: samples per task")
    p.add_argument("--reuse-context", type=int, default=2000, help="reuse mode: context tokens")
    p.add_argument(
        "--repeats", type=int, default=None, help="reuse mode: runs of each way (3); default mode: per checkout (1)"
    )
    p.add_argument("--reuse-tasks", default=",".join(REUSE_TASKS), help="reuse mode: tasks")
    p.add_argument("--reuse-strategies", default=",".join(REUSE_STRATEGIES), help="reuse mode: strategies")
    p.add_argument("--reuse-quantize", default=",".join(REUSE_QUANT), help="reuse mode: KIVI specs ('' for none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--base", default=None, help="default mode: a checkout of an earlier commit, timed alternately")
    p.add_argument("--bench-args", default="", help="default mode: arguments added to both `kvscope bench` runs")
    p.add_argument("--default-out", default="bench_default.md", help="default mode: results file name")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "bench-work"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench.md"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "img" / "bench_pareto.png"), help="'' for none")
    args = p.parse_args()
    args.reuse_repeats, args.default_repeats = args.repeats or 3, args.repeats or 1
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.mode in ("all", "table"):
        run_table(args)
    if args.mode in ("all", "reuse"):
        run_reuse(args)
    if args.mode in ("all", "default"):
        run_default(args)
    if args.mode in ("all", "write"):  # rebuild both result sections from what the runs saved so far
        write_table(args, Path(args.work))
        write_reuse(args, Path(args.work))


if __name__ == "__main__":
    main()
