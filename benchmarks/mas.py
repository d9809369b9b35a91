"""Benchmark: baseline vs text_mas vs latent_mas, sequential and hierarchical, on the embedded model.

The first N GSM8K test problems (``$KVSCOPE_GSM8K``, default ``/work/shared/data/gsm8k/test.jsonl``);
per problem, every method runs before the next problem
(interleaved), so load changes on a shared machine hit all methods alike. Methods: baseline, text_mas and
latent_mas with sequential prompts, then latent_mas and text_mas with hierarchical prompts (the paper's
parallel experts, joined caches). Per method: accuracy, generated tokens (all agents), median and mean wall
seconds per problem, KV bytes handed between agents, and for latent_mas the latent overhead (three prompt
prefills + 3 x latent_steps latent steps) as a share of its time per problem. The latent_mas / text_mas
ratios (speed, tokens) come from the same run, per prompt mode. ``benchmarks/results/mas.md`` is rewritten
after every problem, so a run cut short leaves the problems that finished (the file says how many).

``--arms latent_mas:sequential`` runs only the arms named (method:prompt, comma-separated), e.g. to remeasure
the latent overhead alone into another ``--out`` file.

Usage: ``python benchmarks/mas.py [--problems 20] [--max-new-tokens 256] [--latent-steps 10] [--threads 1]
[--arms METHOD:PROMPT,...] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GSM8K = Path(os.environ.get("KVSCOPE_GSM8K", "/work/shared/data/gsm8k/test.jsonl"))
OUT = ROOT / "benchmarks" / "results" / "mas.md"
ARMS = [
    ("baseline", "sequential"),
    ("text_mas", "sequential"),
    ("latent_mas", "sequential"),
    ("latent_mas", "hierarchical"),
    ("text_mas", "hierarchical"),
]


def arm_name(method: str, prompt: str) -> str:
    return method if method == "baseline" else f"{method} ({prompt})"


def share_line(runs: list) -> str:
    shares = [r.latent_seconds / r.seconds for r in runs if r.seconds]
    if not shares:
        return "n/a"
    spread = f", range {min(shares):.1%} to {max(shares):.1%}" if len(shares) > 1 else ""
    latent = statistics.median(r.latent_seconds for r in runs)
    return f"median {statistics.median(shares):.1%}{spread}; median {latent:.2f} s"


def table(runs: dict[str, list], done: int, total: int) -> list[str]:
    from kvscope.mas.runner import ratios, summarize_runs

    lines = [
        f"### gsm8k ({done} of {total} problems finished)",
        "",
        "| method | accuracy | generated tokens / problem | tokens by agent | median s / problem "
        "| mean s / problem | KV handed / problem |",
        "|---|---|---|---|---|---|---|",
    ]
    summaries = {name: summarize_runs(r) for name, r in runs.items() if r}
    for name, s in summaries.items():
        agents = "/".join(str(v) for v in s["generated_tokens_per_agent"].values())
        lines.append(
            f"| {name} | {s['accuracy']:.0%} ({s['correct']}/{s['problems']}) | "
            f"{s['generated_tokens_per_problem']:.1f} | {agents} | {s['seconds_per_problem_median']:.2f} | "
            f"{s['seconds_per_problem_mean']:.2f} | {s['kv_bytes_handed_per_problem'] / 2**20:.1f} MiB |"
        )
    lines.append("")
    for prompt in ("sequential", "hierarchical"):
        text, latent = f"text_mas ({prompt})", f"latent_mas ({prompt})"
        n = min(len(runs.get(text, [])), len(runs.get(latent, [])))
        if n:
            r = ratios({"text_mas": summarize_runs(runs[text][:n]), "latent_mas": summarize_runs(runs[latent][:n])})
            lines.append(
                f"- {prompt}, latent_mas vs text_mas over the same {n} problems: "
                f"**{r['speedup_latent_vs_text']:.2f}x** faster (total time), "
                f"**{r['token_reduction_latent_vs_text']:.1%}** fewer generated tokens, accuracy "
                f"{r['accuracy_delta_latent_minus_text']:+.0%}."
            )
        if runs.get(latent):
            lines.append(
                f"- {prompt} latent_mas, latent overhead (3 prompt prefills + latent steps) as a share "
                f"of its time per problem: {share_line(runs[latent])}."
            )
    return lines + [""]


def write(args: argparse.Namespace, runs: dict[str, list], done: int, total: int, command: str, elapsed: float) -> None:
    title = "baseline vs text_mas vs latent_mas, sequential and hierarchical" if not args.arms else ", ".join(runs)
    lines = [
        f"## LatentMAS: {title}",
        "",
        f"Embedded SmolLM2-135M-Instruct, float32, CPU ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, **{torch.get_num_threads()} torch thread(s)**. Sampling at temperature "
        f"{args.temperature}, top-p {args.top_p}, top-k off, seed {args.seed}; max_new_tokens "
        f"{args.max_new_tokens} per decoding agent; latent_steps {args.latent_steps}; no realignment; "
        f"kNN off; bs 1. {'Methods interleaved per problem' if len(runs) > 1 else 'One method'}; "
        f"one run ({elapsed / 60:.0f} min"
        f"{' so far' if done < total else ''}), so "
        f"medians are over problems, not repeats. {args.note}",
        "",
    ]
    lines += table(runs, done, total)
    lines += ["Reproduce:", "", "```", command, "```", ""]
    Path(args.out).write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=20)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--latent-steps", type=int, default=10)
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="")
    p.add_argument("--out", default=str(OUT), help="Markdown file to write.")
    p.add_argument("--arms", default="", help="method:prompt,... (default: all five)")
    args = p.parse_args()
    arms = [tuple(a.split(":")) for a in args.arms.split(",")] if args.arms else ARMS
    if not set(arms) <= set(ARMS):
        p.error(f"--arms: each of method:prompt must be one of {', '.join(':'.join(a) for a in ARMS)}")
    torch.set_num_threads(args.threads)
    from kvscope.mas.config import MasConfig
    from kvscope.mas.methods import MasSettings
    from kvscope.mas.problems import load_task
    from kvscope.mas.runner import run_batch
    from kvscope.models import load_model

    loaded = load_model("embedded")
    problems = load_task("gsm8k", args.problems, args.seed, GSM8K)
    settings = {
        prompt: MasSettings(
            loaded.model,
            loaded.tokenizer,
            loaded.info,
            MasConfig(
                prompt=prompt,
                latent_steps=args.latent_steps,
                max_new_tokens=args.max_new_tokens,
                temperature=args.temperature,
                top_p=args.top_p,
                seed=args.seed,
            ),
        )
        for prompt in ("sequential", "hierarchical")
    }
    shown = [f"--problems {args.problems}", f"--max-new-tokens {args.max_new_tokens}"]
    shown += [f"--arms {args.arms} --out {os.path.relpath(args.out, ROOT)}"] if args.arms else []
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mas.py " + " ".join(shown)
    runs: dict[str, list] = {arm_name(m, p): [] for m, p in arms}
    t0 = time.perf_counter()
    for i, problem in enumerate(problems):
        for method, prompt in arms:
            runs[arm_name(method, prompt)] += run_batch(settings[prompt], method, [problem])
        write(args, runs, i + 1, len(problems), command, time.perf_counter() - t0)
        print(
            f"{i + 1}/{len(problems)} problems, {time.perf_counter() - t0:.0f} s; "
            + "; ".join(f"{k} {statistics.median(r.seconds for r in v):.1f} s" for k, v in runs.items()),
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    main()
