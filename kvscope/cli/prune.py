"""``kvscope prune``: evict or quantize a prompt's KV cache and measure what it costs.

A thin client of ``kvscope.prune.pruning`` (``compare_pruning``, ``sweep_pruning``, ``scan_pruning``,
``token_importance``): it checks the flags, loads the model, calls one function and prints its result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    check_out,
    emit_json,
    force_option,
    json_option,
    load,
    model_options,
    option,
    out_option,
    prompt_options,
    read_prompt,
    repeats_option,
    setup_logging,
    stderr_console,
)
from kvscope.errors import UsageError
from kvscope.prune.engine import SWEEP
from kvscope.prune.settings import PruneSettings as S
from kvscope.prune.strategies import STRATEGIES, setting_defaults, summaries


def _strategy_lines() -> str:
    width = max(len(n) for n in STRATEGIES)
    lines = []
    for name, summary in summaries().items():
        settings = ", ".join(f"{k}={v}" for k, v in setting_defaults(name).items())
        lines.append(f"    {name:<{width}}  {summary}\n    {'':<{width}}  settings: {settings}")
    return "\n".join(lines)


HELP = f"""Prefill a prompt once, evict (or quantize) part of its KV cache, then score a continuation
against the pruned cache and compare with the unpruned baseline.

\b
Semantics:
  * The prompt is prefilled once into a cache, which is then pruned. The continuation is scored
    by teacher forcing against the pruned cache, so its tokens cannot attend to pruned entries.
    Its first token is predicted before any pruning, so tokens 2.. are scored.
  * Pruning means eviction: entries are removed from the cache, or masked so that they get
    exactly zero attention probability (never zeroed: a zero key still takes softmax mass).
  * --prune-layers L alone evicts every kv_head of those layers for all prompt positions;
    --prune-heads H with --prune-layers evicts only those kv_heads in those layers;
    --prune-heads H alone evicts those kv_heads in every layer.
  * Head indices are kv_head indices: with GQA each one serves a group of query heads
    (3 per kv_head on the embedded SmolLM2-135M).
  * Reported for baseline and pruned, with the % change: continuation perplexity; latency of the
    continuation forward and of decoding 32 tokens after it (median and min-max of --repeats after
    a warm-up, each against its own cache; a change within the spread is noise); KV bytes held for
    the prompt, from the tensors kept.
  * --strategy NAME --ratio R evicts a fraction R of the prompt tokens per kv_head, with
    --setting KEY=VALUE for the strategy's conventions (defaults below; rounding=ceil keeps
    ceil((1-R)*n) tokens, floor keeps floor((1-R)*n); snapkv's window is 32, some use 64; knorm
    skips no layers, its authors' code skips 2). {len(STRATEGIES)} strategies:
{_strategy_lines()}
  * --quantize K4V2[G32][R128] applies KIVI: keys per-channel, values per-token, groups of G;
    as in the paper's code, keys keep the last T mod R tokens and values the last R in full
    precision (R 128 by default, R0 = none). Bytes are reported at the cache's dtype and float16.
  * One prompt and one continuation are an example, not a ranking: a strategy that wins on one
    text loses on another. Compare strategies over many samples, with intervals: kvscope bench.

\b
Examples:
  kvscope prune --prune-layers 0,1,2 --prune-heads 2,3
  kvscope prune --strategy knorm --ratio 0.5
  kvscope prune --strategy snapkv --ratio 0.5 --setting window=64 --setting rounding=floor
  kvscope prune --quantize K4V2
  kvscope prune --sweep --out kvscope-prune        # compression_pareto.png, sweep.csv, sweep.json
  kvscope prune --scan layers --out kvscope-prune  # prune_scan_layers.png/.json
  kvscope prune --leave-one-out --out kvscope-out  # importance_ground_truth.png/.json
"""


def parse_indices(text: str | None, flag: str) -> list[int] | None:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (sorted, unique); a one-line ``UsageError`` for anything else."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers such as 0,1,2; got {text!r}") from None
    return sorted(set(values))


def _check_modes(
    layers: Any,
    heads: Any,
    strategy: Any,
    ratio: Any,
    quantize: Any,
    repeats: int,
    sweep: bool,
    scan: Any,
    loo: bool,
    settings: tuple[str, ...],
) -> str:
    """Which mode runs: sweep, scan, leave_one_out or single; refuse contradictory flag sets."""
    modes = [m for m, on in (("sweep", sweep), ("scan", scan), ("leave_one_out", loo)) if on]
    if len(modes) > 1:
        raise UsageError("use only one of --sweep, --scan and --leave-one-out")
    given = {"prune_layers": layers, "prune_heads": heads, "strategy": strategy, "quantize": quantize}
    pruning = [f"--{n.replace('_', '-')}" for n, v in given.items() if v is not None]
    if modes and pruning:
        raise UsageError(f"--{modes[0].replace('_', '-')} chooses its own configurations; drop {', '.join(pruning)}")
    if ratio is not None and strategy is None:
        raise UsageError("--ratio needs --strategy NAME")
    if settings and strategy is None:
        raise UsageError("--setting needs --strategy NAME")
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    return modes[0] if modes else "single"


@click.command(context_settings=CONTEXT_SETTINGS, help=HELP)
@model_options
@prompt_options
@option(
    "--continuation",
    "continuation",
    default=S.continuation,
    help="Text scored against the pruned cache (default: built-in).",
)
@option(
    "--prune-layers",
    "prune_layers",
    aliases=("--prune_layers",),
    params=("layers",),
    default=S.prune_layers,
    help="Layers to evict, e.g. 0,1,2.",
)
@option(
    "--prune-heads",
    "prune_heads",
    aliases=("--prune_heads",),
    params=("heads",),
    default=S.prune_heads,
    help="kv_heads to evict, e.g. 2,3.",
)
@option("--strategy", "strategy", default=S.strategy, help=f"Token eviction: {', '.join(STRATEGIES)}.")
@option("--ratio", "ratio", type=float, default=None, help=f"Fraction of prompt tokens removed, in (0, 1). [{S.ratio}]")
@option(
    "--setting",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A strategy setting, e.g. window=64, rounding=floor, skip_layers=2 (repeatable).",
)
@option(
    "--quantize",
    "quantize",
    default=S.quantize,
    help="KIVI spec K<bits>V<bits>[G<group>][R<residual>], e.g. K4V2.",
)
@repeats_option(S.repeats, "Timed runs (median, min-max) after a warm-up.", type=int)
@option(
    "--sweep",
    "sweep",
    is_flag=True,
    help=f"Every strategy at {'/'.join(f'{r:g}' for r in SWEEP.ratios)} plus {'/'.join(SWEEP.quantize)}.",
)
@option(
    "--scan",
    "scan",
    type=click.Choice(["layers", "heads"]),
    default=S.scan,
    help="Evict each layer (or kv_head) alone and measure the perplexity change.",
)
@option(
    "--leave-one-out",
    "leave_one_out",
    aliases=("--leave_one_out",),
    is_flag=True,
    help="Evict each prompt token in turn; write importance_ground_truth.png/.json.",
)
@out_option(
    S.out, "Folder for figures and data (--sweep, --scan, --leave-one-out); each mode replaces only its own files."
)
@force_option
@json_option
def prune(
    model,
    device,
    dtype,
    trust_remote_code,
    device_map,
    prompt,
    prompt_file,
    truncate,
    continuation,
    prune_layers,
    prune_heads,
    strategy,
    ratio,
    settings,
    quantize,
    repeats,
    sweep,
    scan,
    leave_one_out,
    out,
    force,
    as_json,
):
    from kvscope.prune import prune_output as report
    from kvscope.prune import pruning as api
    from kvscope.prune.default_texts import DEFAULT_PROMPT
    from kvscope.prune.engine import check_ratio
    from kvscope.prune.strategies import make_strategy, parse_settings
    from kvscope.quant import parse_spec

    setup_logging(quiet=as_json)
    mode = _check_modes(
        prune_layers, prune_heads, strategy, ratio, quantize, repeats, sweep, scan, leave_one_out, settings
    )
    layers, heads = parse_indices(prune_layers, "--prune-layers"), parse_indices(prune_heads, "--prune-heads")
    ratio = S.ratio if ratio is None else ratio
    chosen = make_strategy(strategy, **parse_settings(strategy, settings)) if strategy else None
    if chosen is not None:
        check_ratio(ratio)
    spec = parse_spec(quantize) if quantize is not None else None
    if continuation is not None and not continuation.strip():
        raise UsageError("the continuation is empty: pass --continuation TEXT with at least two tokens")
    if mode != "single":
        check_out(out, report.command(mode, scan), force, [prompt_file])
    text = read_prompt(prompt, prompt_file, default=DEFAULT_PROMPT)
    m, tok, info = load(model, device, dtype, trust_remote_code, device_map)
    common = dict(info=info, truncate=truncate)
    files: list[Path] = []
    if mode == "single":  # a status line; the longer modes show counted progress (kvscope.progress)
        with stderr_console().status("measuring ..."):
            result = api.compare_pruning(
                m,
                tok,
                text,
                continuation,
                chosen,
                ratio,
                layers=layers,
                heads=heads,
                quantize=spec,
                repeats=repeats,
                **common,
            )
    elif mode == "sweep":
        result = api.sweep_pruning(m, tok, text, continuation, quiet=as_json, **common)
    elif mode == "scan":
        result = api.scan_pruning(m, tok, text, continuation, scan, quiet=as_json, **common)
    else:
        result = api.token_importance(m, tok, text, continuation, quiet=as_json, **common)
    if mode != "single":
        files = result.save(out, force)
    data = _as_dict(mode, result, files)
    if as_json:
        emit_json(data)
    else:
        from kvscope.cli.prune_tables import print_result

        print_result(mode, data)


def _as_dict(mode: str, result: Any, files: list[Path]) -> dict[str, Any]:
    """The JSON of a mode's result (what --json prints and the tables read)."""
    if mode == "leave_one_out":
        d = {**result.ground_truth_json(), "baseline_loglik": result.baseline_loglik, "spearman": result.spearman}
    else:
        d = result.to_dict()
    return {**d, "files": [str(f) for f in files]} if mode != "single" else d
