"""Benchmark: baseline vs text_mas vs latent_mas (``kvscope mas --method all``) on the embedded model.

For each task (built-in ``arith`` and the first N GSM8K test problems from ``../shared/data``), the three
methods run on the same problems with the same seeds, one problem at a time, interleaved (problem 1 with
every method, then problem 2, ...) so that load changes on a shared machine hit all methods alike. Per method: accuracy,
generated tokens (all agents), median and mean wall seconds per problem, KV bytes handed between agents.
The latent_mas / text_mas ratios (speed, tokens) come from the same run. Results go to
``benchmarks/results/mas.md`` (rewritten after each task, so a long run leaves partial results).

Usage: ``python benchmarks/mas.py [--problems 20] [--max-new-tokens 128] [--latent-steps 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
OUT = ROOT / "benchmarks" / "results" / "mas.md"


def run_task(args: argparse.Namespace, loaded, task: str) -> dict:
    from kvscope.mas.methods import MasSettings
    from kvscope.mas.runner import method_names, ratios, run_method, summarize
    from kvscope.mas.tasks import load_task

    problems = load_task(task, args.problems, args.seed, GSM8K if task == "gsm8k" else None)
    settings = MasSettings(loaded.model, loaded.tokenizer, loaded.info, latent_steps=args.latent_steps,
                           max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                           seed=args.seed)
    names = method_names("all")
    runs: dict[str, list] = {name: [] for name in names}
    t0 = time.perf_counter()
    for i, problem in enumerate(problems):  # interleaved: a load change on the shared machine hits every method
        for name in names:
            runs[name] += run_method(settings, name, [problem], 1)
        print(f"{task}: {i + 1}/{len(problems)} problems, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    summaries = {name: summarize(r) for name, r in runs.items()}
    return {"problems": len(problems), "methods": summaries, "ratios": ratios(summaries)}


def table(task: str, res: dict) -> list[str]:
    lines = [f"### {task} ({res['problems']} problems)", "",
             "| method | accuracy | generated tokens / problem | tokens by agent (P/C/R/J) | median s / problem "
             "| mean s / problem | KV handed / problem |", "|---|---|---|---|---|---|---|"]
    for name, s in res["methods"].items():
        agents = "/".join(str(v) for v in s["generated_tokens_per_agent"].values())
        lines.append(f"| {name} | {s['accuracy']:.0%} ({s['correct']}/{s['problems']}) | "
                     f"{s['generated_tokens_per_problem']:.1f} | {agents} | {s['seconds_per_problem_median']:.2f} | "
                     f"{s['seconds_per_problem_mean']:.2f} | {s['kv_bytes_handed_per_problem'] / 2**20:.1f} MiB |")
    r = res["ratios"]
    lines += ["", f"latent_mas vs text_mas (same run): **{r['speedup_latent_vs_text']:.2f}x** faster (total time), "
                  f"**{r['token_reduction_latent_vs_text']:.1%}** fewer generated tokens, accuracy "
                  f"{r['accuracy_delta_latent_minus_text']:+.0%}.", ""]
    return lines


def write(args: argparse.Namespace, results: dict, command: str, elapsed: float) -> None:
    lines = ["## LatentMAS: baseline vs text_mas vs latent_mas (`kvscope mas --method all`)", "",
             f"Embedded SmolLM2-135M-Instruct, float32, CPU ({platform.processor() or platform.machine()}), "
             f"torch {torch.__version__}, **{torch.get_num_threads()} torch thread(s)**. Sampling at temperature "
             f"{args.temperature}, top-p {args.top_p}, seed {args.seed}; max_new_tokens {args.max_new_tokens} per "
             f"decoding agent; latent_steps {args.latent_steps}; sequential prompts; no realignment; bs 1. "
             f"Methods interleaved per problem; one run ({elapsed / 60:.0f} min in all), so medians are over problems, not repeats. "
             f"{args.note}", ""]
    for task, res in results.items():
        lines += table(task, res)
    lines += ["Reproduce:", "", "```", command, "```", ""]
    Path(args.out).write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=20)
    p.add_argument("--tasks", nargs="+", default=["arith", "gsm8k"])
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--latent-steps", type=int, default=10)
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="")
    p.add_argument("--out", default=str(OUT), help="Markdown file to write.")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from kvscope.models import load_model

    loaded = load_model("embedded")
    command = "OMP_NUM_THREADS=1 .venv/bin/python " + " ".join(["benchmarks/mas.py"] + sys.argv[1:])
    t0, results = time.perf_counter(), {}
    for task in args.tasks:
        with torch.inference_mode():
            results[task] = run_task(args, loaded, task)
        write(args, results, command, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
