"""``kvscope bench``: KV-cache compression judged on tasks over many samples (a thin client of
``kvscope.bench.bench``)."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.bench.settings import BenchSettings as S
from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    check_out,
    emit_json,
    force_option,
    load,
    model_options,
    option,
    out_option,
    samples_option,
    seed_option,
    setup_logging,
)
from kvscope.errors import UsageError

HELP = """Judge KV-cache compression on tasks, over many samples, with 95 % intervals.

Each sample's context is prefilled ONCE; every configuration (baseline, each strategy x ratio, each
KIVI spec) compresses a copy of that cache, then the question is fed at its true positions and the
answer decoded greedily from the compressed cache (query-agnostic compression). A QA sample is correct
when the normalised gold answer (lower case, punctuation removed) appears in the normalised generated
answer (RULER's string match). Accuracy intervals are Wilson 95 %; the text task's mean perplexity
ratio has a bootstrap 95 % interval. Ties are paired tests against the best compressed configuration
on the same samples: exact McNemar (p >= 0.05) for accuracy, a bootstrap interval of the mean
per-sample difference containing 0 for perplexity.

Prompts are raw text by default (context, then question; no chat template, unlike kvpress's
pipeline); --chat uses the model's chat template (QA samples; text samples stay raw). Answers stop
at the tokenizer's EOS or end-of-turn token, or once their verdict is settled (the gold is there, or
the tokens left cannot write it), so samples.jsonl holds the answer up to there ("settled": true).

Tasks: {qa} (generated, seeded, offline) and text (perplexity on {texts} built-in texts;
--context-tokens does not apply to it). --data FILE.jsonl with
{"context", "question", "answer"} lines runs your own task (malformed lines skipped), every line
unless --samples N is given (then the first N); it replaces the built-in tasks unless --task is
given too. Several processes: accelerate launch --num_processes N
-m kvscope bench ... (on a CPU-only machine add --multi_gpu so accelerate starts N processes).

--task streaming (alone) reproduces StreamingLLM's Fig. 3: per-token log-perplexity along the joined
texts (--samples streams [4] of --context-tokens tokens [384]), fed one token per step while the cache
is held to each of --budgets, for dense attention and --strategies [window,streaming,h2o,tova,knorm].

\b
Examples:
  kvscope bench --out bench-out
  kvscope bench --task passkey --samples 50 --strategies snapkv,knorm --ratios 0.5,0.9
  kvscope bench --strategies snapkv,pyramidkv --setting window=64 --setting rounding=floor
  kvscope bench --data mine.jsonl --json
  kvscope bench --task streaming --budgets 64,128,256
"""


def _help() -> str:
    from kvscope.bench.tasks import TASKS
    from kvscope.bench.texts import TEXTS

    qa = ", ".join(n for n, t in TASKS.items() if t.kind == "qa")
    return HELP.replace("{qa}", qa).replace("{texts}", str(len(TEXTS)))


def split_list(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items and text.strip():
        raise UsageError(f"{flag} takes a comma-separated list, got {text!r}")
    return items


def parse_ratios(text: str) -> list[float]:
    from kvscope.prune.engine import check_ratio

    try:
        return [check_ratio(float(p)) for p in split_list(text, "--ratios") or []]
    except UsageError:
        raise
    except ValueError:
        raise UsageError(f"--ratios takes numbers in (0, 1) such as 0.25,0.5; got {text!r}") from None


@click.command(context_settings=CONTEXT_SETTINGS, help=_help())
@model_options
@option("-t", "--task", "tasks", multiple=True, help=f"A task (repeatable). [{', '.join(S.tasks)}]")
@samples_option(None, f"Samples per built-in task, and the first N lines of --data. [{S.samples}; every --data line]")
@option(
    "-c",
    "--context-tokens",
    "context_tokens",
    type=int,
    default=S.context_tokens,
    show_default=True,
    help="Context length of the generated tasks, in tokens.",
)
@option("--strategies", "strategies", default=None, help="Comma-separated eviction strategies. [every registered one]")
@option(
    "--ratios",
    "ratios",
    default=",".join(f"{r:g}" for r in S.ratios),
    show_default=True,
    help="Fractions of context tokens removed (e.g. 0.25,0.5,0.75,0.9).",
)
@option("--quantize", "quantize", default=",".join(S.quantize), show_default=True, help="KIVI specs ('' for none).")
@option("--data", "data", default=None, help="JSONL file of context/question/answer lines, or hf:NAME[:split].")
@seed_option(S.seed)
@option(
    "--chat",
    "chat",
    is_flag=True,
    help="Context + question as the user's turn of the model's chat template, a built-in task's answer "
    "primer ('The pass key is') starting the assistant's turn. [raw text]",
)
@option(
    "--max-answer-tokens",
    "max_answer_tokens",
    type=int,
    default=S.max_answer_tokens,
    help="Greedy answer length in tokens. [6 built-in tasks, 16 --data]",
)
@click.option(
    "--setting",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A strategy setting for every strategy that declares it, e.g. window=64, rounding=floor (repeatable).",
)
@click.option(
    "--snapkv-window",
    type=click.Choice(["32", "64"]),
    default=None,
    help="Shortcut for --setting window=N (strategies that declare 'window'). [32]",
)
@click.option(
    "--rounding",
    type=click.Choice(["floor", "ceil"]),
    default=None,
    help="Shortcut for --setting rounding=... (every strategy). [ceil]",
)
@click.option(
    "--knorm-skip-layers",
    type=int,
    default=None,
    help="Shortcut for --setting skip_layers=N (knorm). [0]",
)
@click.option(
    "--budgets",
    default=None,
    help="--task streaming (decode-time, StreamingLLM Fig. 3): cache budgets in tokens per layer and kv_head. "
    "[64,128,256]",
)
@out_option(S.out, "Folder for bench.json, samples.jsonl, bench_pareto.png and report.html.")
@force_option
@option("--json", "as_json", is_flag=True, help="Print bench.json's content on stdout.")
def bench(
    model,
    device,
    dtype,
    trust_remote_code,
    device_map,
    tasks,
    samples,
    context_tokens,
    strategies,
    ratios,
    quantize,
    data,
    seed,
    chat,
    max_answer_tokens,
    settings,
    snapkv_window,
    rounding,
    knorm_skip_layers,
    budgets,
    out,
    force,
    as_json,
):
    from kvscope.cli import bench_streaming

    if bench_streaming.wanted(tasks, budgets):  # decodetask: the decode-time task runs its own loop
        return bench_streaming.run(click.get_current_context())
    from kvscope.bench import shard
    from kvscope.bench.benchmark import validate
    from kvscope.prune.engine import build_grid, parse_pairs

    setup_logging(quiet=as_json)
    task_list = list(tasks) if tasks else ([] if data else list(S.tasks))
    validate(task_list, samples, context_tokens, max_answer_tokens)
    ratio_list = parse_ratios(ratios)
    if not ratio_list:
        raise UsageError("--ratios needs at least one ratio")
    shortcuts = {"window": snapkv_window, "rounding": rounding, "skip_layers": knorm_skip_layers}
    chosen = parse_pairs(settings, shortcuts)
    quant_list = split_list(quantize, "--quantize") or []
    build_grid(split_list(strategies, "--strategies"), ratio_list, quant_list, chosen)  # names, settings, specs
    check_out(out, "bench", force, [data])
    user = None
    if data is not None:
        from kvscope.bench.data import load_samples

        user = load_samples(data)
    m, tok, _info = load(model, device, dtype, trust_remote_code, device_map)
    from kvscope.bench.benchmark import bench as run_bench

    result = run_bench(
        m,
        tok,
        tasks=task_list,
        samples=samples,
        context_tokens=context_tokens,
        strategies=split_list(strategies, "--strategies"),
        ratios=ratio_list,
        quantize=quant_list,
        data=user,
        seed=seed,
        chat=chat,
        max_answer_tokens=max_answer_tokens,
        settings=chosen,
        model_name=model,
        quiet=as_json,
    )
    if shard.world()[0] != 0:
        return
    result.save(out, force=force)
    if as_json:
        emit_json(result.to_dict())
    else:
        print_table(result, out)


def print_table(result, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from kvscope.bench.summary import POOLED

    cols = list(result.rows[0].accuracy)
    has_ppl = any(r.ppl_ratio is not None for r in result.rows)
    from rich.markup import escape

    table = Table(title=escape(f"kvscope bench: {result!r}"), title_justify="left")
    table.add_column("configuration")
    for c in cols:
        table.add_column(f"acc {'all QA' if c == POOLED else c} %", justify="right")
    if has_ppl:
        table.add_column("text ppl ratio", justify="right")
    for name in ("KV kept %", "seconds"):
        table.add_column(name, justify="right")
    for r in result.rows:
        cells = [r.accuracy[c].text() for c in cols] + (
            [r.ppl_ratio.text(False) if r.ppl_ratio else "-"] if has_ppl else []
        )
        table.add_row(*map(escape, [r.config, *cells]), f"{100 * r.kv_fraction:.1f}", f"{r.seconds:.1f}")
    console = Console()
    console.print(table)
    console.print(
        "value [95 % interval]: Wilson for accuracy, bootstrap for perplexity; * best compressed "
        "configuration, ~ tied with it: not different on the same samples (exact McNemar test p >= 0.05 "
        "for accuracy; paired bootstrap interval of the difference containing 0 for perplexity)."
    )
    for w in result.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    s = result.settings
    if s.get("data_samples") is not None:
        console.print(f"--data: scored {s['data_samples']} of its {s['data_lines']} samples")
    console.print(f"wrote {out}/bench.json, samples.jsonl, bench_pareto.png, report.html")
