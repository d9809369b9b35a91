"""``kvscope mas``: LatentMAS against a single agent and text-based multi-agent collaboration."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    device_option,
    dtype_option,
    emit_json,
    force_option,
    json_option,
    load,
    model_option,
    option,
    out_option,
    samples_option,
    seed_option,
    setup_logging,
)
from kvscope.errors import UsageError
from kvscope.mas.settings import MasCommandSettings as S


def _opt(name: str, *args: Any, **kwargs: Any):
    """An option spelled ``--a-b``, the original run.py's ``--a_b`` kept as a hidden alias."""
    aliases = (f"--{name}",) if "_" in name else ()
    return option(f"--{name.replace('_', '-')}", name, *args, aliases=aliases, **kwargs)


OPTIONS = [
    _opt(
        "method",
        type=click.Choice(["baseline", "text_mas", "latent_mas", "all"]),
        required=True,
        help="Method to run; 'all' runs the three on the same problems and seeds, interleaved per problem.",
    ),
    model_option(aliases=("--model_name",)),
    device_option,
    dtype_option,
    _opt(
        "task",
        type=click.Choice(["arith", "gsm8k"]),
        default=S.task,
        show_default=True,
        help="arith: built-in seeded problems; gsm8k: --data FILE.jsonl.",
    ),
    _opt(
        "data",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="GSM8K-format JSONL (question, answer ending in '#### N').",
    ),
    samples_option(
        S.samples,
        "Problems to run (-1: all).",
        aliases=("--max_samples", "--max-samples"),
        params=("max_samples",),
        show_default=True,
    ),
    _opt(
        "latent_steps", type=int, default=S.latent_steps, show_default=True, help="Latent steps per non-judger agent."
    ),
    _opt(
        "max_new_tokens",
        type=click.IntRange(min=1),
        default=S.max_new_tokens,
        show_default=True,
        help="Decoding budget per decoding agent.",
    ),
    _opt("temperature", type=click.FloatRange(min=0), default=S.temperature, show_default=True, help="0 = greedy."),
    _opt("top_p", type=click.FloatRange(0, 1, min_open=True), default=S.top_p, show_default=True),
    _opt(
        "top_k",
        type=click.IntRange(min=1),
        default=S.top_k,
        help="Sample only among the K most likely tokens (off by default). The original's generate() applied "
        "the model's generation-config top_k implicitly (50 when the config sets none; Qwen3's sets 20); "
        "results.json records that value as generate_top_k.",
    ),
    seed_option(S.seed),
    option(
        "--batch-size",
        "batch_size",
        aliases=("--generate_bs", "--generate-bs"),
        type=click.IntRange(min=1),
        default=S.batch_size,
        show_default=True,
        help="Problems per batch.",
    ),
    _opt("prompt", type=click.Choice(["sequential", "hierarchical"]), default=S.prompt, show_default=True),
    _opt("latent_space_realign", is_flag=True, help="Map hidden states through the ridge W_a (else identity)."),
    _opt("show_heatmaps", is_flag=True, help="Query-to-cache cosine heatmaps, every layer."),
    _opt("show_heatmaps_singlelayer", is_flag=True, help="The same for the middle layer, min-max normalised."),
    _opt("knn_filter", is_flag=True, help="Filter the shared cache at each agent transition."),
    _opt(
        "knn_percentage",
        type=float,
        default=S.knn_percentage,
        show_default=True,
        params=("keep_fraction",),
        help="Fraction of slots kept, (0, 1].",
    ),
    _opt(
        "knn_strategy",
        type=click.Choice(["top", "bottom", "random"]),
        default=S.knn_strategy,
        show_default=True,
        params=("strategy",),
    ),
    _opt(
        "knn_min_keep",
        type=click.IntRange(min=0),
        default=S.knn_min_keep,
        show_default=True,
        params=("min_keep",),
        help="Most recent slots always kept.",
    ),
    _opt(
        "knn_positions",
        type=click.Choice(["true", "reuse"]),
        default=S.knn_positions,
        show_default=True,
        help="Positions of tokens after filtering: 'true' continues from the real length; 'reuse' takes the "
        "cache length after filtering, as the kNN fork did (reproduces its numbers).",
    ),
    _opt(
        "include_old_prompts",
        is_flag=True,
        help="Stack each earlier sequential agent's prompt into the next one's (the kNN fork's headline runs).",
    ),
    out_option(
        S.out,
        "Folder for results.json and trace.jsonl (a folder holding other files is refused unless --force).",
        type=click.Path(file_okay=False, path_type=Path),
    ),
    _opt(
        "charts",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder for heatmaps (default: OUT/charts).",
    ),
    force_option,
    json_option,
]


def with_options(f):
    for opt in reversed(OPTIONS):
        f = opt(f)
    return f


@click.command(context_settings=CONTEXT_SETTINGS)
@with_options
def mas(**kw: Any) -> None:
    """Planner, Critic, Refiner and Judger collaborating through one shared KV cache (LatentMAS), against
    one agent and against agents that exchange text; optional kNN cache filtering and similarity heatmaps.

    \b
    Examples:
      kvscope mas --method all --samples 5 --max-new-tokens 128
      kvscope mas --method latent_mas --task gsm8k --data test.jsonl --knn-filter --show-heatmaps
    """
    from kvscope.mas.config import MasConfig
    from kvscope.mas.experiment import run_mas
    from kvscope.mas.knn import KnnConfig
    from kvscope.mas.problems import load_task
    from kvscope.mas.runner import method_names

    setup_logging(quiet=kw["as_json"])
    knn = KnnConfig(kw["knn_percentage"], kw["knn_min_keep"], kw["knn_strategy"])
    heat = kw["show_heatmaps"] or kw["show_heatmaps_singlelayer"]
    config = MasConfig(
        prompt=kw["prompt"],
        latent_steps=kw["latent_steps"],
        max_new_tokens=kw["max_new_tokens"],
        temperature=kw["temperature"],
        top_p=kw["top_p"],
        top_k=kw["top_k"],
        seed=kw["seed"],
        realign=kw["latent_space_realign"],
        knn=knn if kw["knn_filter"] else None,
        knn_positions=kw["knn_positions"],
        include_old_prompts=kw["include_old_prompts"],
        similarities=heat,
        batch_size=kw["batch_size"],
    )
    names = method_names(kw["method"])
    if kw["samples"] == 0 or kw["samples"] < -1:
        raise UsageError(f"--samples must be positive or -1 (all), got {kw['samples']}")
    _check_folders(kw["out"], kw["charts"], kw["force"], kw["data"])
    problems = load_task(kw["task"], kw["samples"], kw["seed"], kw["data"])
    if (heat or kw["knn_filter"] or kw["include_old_prompts"]) and "latent_mas" not in names:
        logging.getLogger("kvscope").warning("heatmaps, kNN filtering and stacked prompts apply to latent_mas only")
    from kvscope.mas.experiment import config_refusal

    loaded = load(kw["model"], kw["device"], kw["dtype"], refuse=(config_refusal,))
    result = run_mas(
        loaded.model,
        loaded.tokenizer,
        problems,
        kw["method"],
        config=config,
        info=loaded.info,
        task=kw["task"],
        quiet=kw["as_json"],
    )
    files = result.save(
        kw["out"], kw["show_heatmaps"], kw["show_heatmaps_singlelayer"], kw["charts"], force=kw["force"]
    )
    results = {**result.to_dict(), "files": [str(p) for p in files]}
    if kw["as_json"]:
        emit_json(results)
        return
    print_results(results)


def _check_folders(out: Path, charts: Path | None, force: bool, data: Path | None) -> None:
    """Refuse output folders that could not be written, or that would delete files kvscope did not write,
    before any model loads or file is created."""
    from kvscope.cli.common import check_out

    if charts is not None and Path(os.path.abspath(charts)) == Path(os.path.abspath(out)):
        raise UsageError(f"--charts {charts} and --out {out} are the same folder: give --charts another folder")
    check_out(out, "mas", force, [data])
    if charts is not None:
        check_out(charts, "mas --charts", force, [data], option="--charts")


def _human_bytes(n: float) -> str:
    """Binary units: KiB, MiB, GiB (powers of 1024)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


KV_HANDED_NOTE = (
    "* KV handed: the KV cache each agent receives from the one before it, summed over a problem's hand-offs "
    "(the cache grows, so its early slots count again at every hand-off); 'tokens by agent' is summed over "
    "all problems, in agent order."
)


def print_results(results: dict[str, Any]) -> None:
    """One row per method, then the latent_mas / text_mas ratios and the files written."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"kvscope mas: {results['model']}, task {results['task']}")
    for col in (
        "method",
        "accuracy",
        "tokens/problem",
        "tokens by agent (total)",
        "s/problem (median)",
        "latent share",
        "KV handed/problem*",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, s in results["methods"].items():
        agents = "/".join(str(v) for v in s["generated_tokens_per_agent"].values())
        table.add_row(
            name,
            f"{s['accuracy']:.1%} ({s['correct']}/{s['problems']})",
            f"{s['generated_tokens_per_problem']:.1f}",
            agents,
            f"{s['seconds_per_problem_median']:.2f}",
            f"{s['latent_share_of_time']:.0%}" if s["latent_seconds_total"] else "-",
            _human_bytes(s["kv_bytes_handed_per_problem"]),
        )
    console = Console()
    console.width = max(console.width, 120)  # keep the per-agent column readable when piped
    console.print(table)
    console.print(KV_HANDED_NOTE)
    for name, s in results["methods"].items():
        held = s.get("kv_bytes_in_per_agent_per_problem") or {}
        if any(held.values()):
            each = ", ".join(f"{role} {_human_bytes(b)}" for role, b in held.items() if b)
            console.print(f"{name}: KV held at each hand-off, mean per problem: {each}")
    r = results.get("ratios")
    if r:
        console.print(
            f"latent_mas vs text_mas: {r['speedup_latent_vs_text']:.2f}x faster, "
            f"{r['token_reduction_latent_vs_text']:.1%} fewer generated tokens, accuracy "
            f"{r['accuracy_delta_latent_minus_text']:+.1%}"
        )
    for name, s in results["methods"].items():
        if s["knn_bytes_before"]:
            console.print(
                f"{name} kNN filter: KV {_human_bytes(s['knn_bytes_before'])} -> "
                f"{_human_bytes(s['knn_bytes_after'])} over all transitions"
            )
    click.echo(f"wrote {len(results['files'])} files, first {results['files'][0]}")
