"""``kvscope prune``: evict or quantize a prompt's KV cache and measure what it costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kvscope.cli.common import (CONTEXT_SETTINGS, emit_json, json_option, load, model_options, prompt_options,
                                read_prompt, setup_logging, stderr_console)
from kvscope.errors import UsageError

HELP = """Prefill a prompt once, evict (or quantize) part of its KV cache, then score a continuation
against the pruned cache and compare with the unpruned baseline.

\b
Semantics:
  * The prompt is prefilled once into a cache, which is then pruned. The continuation is scored
    by teacher forcing against the pruned cache, so its tokens cannot attend to pruned entries.
    Its first token is predicted before any pruning, so tokens 2.. are scored.
  * Pruning means eviction: entries are removed from the cache, or masked so that they get
    exactly zero attention probability (never zeroed: a zero key still takes softmax mass).
  * --prune_layers L alone evicts every kv_head of those layers for all prompt positions;
    --prune_heads H with --prune_layers evicts only those kv_heads in those layers;
    --prune_heads H alone evicts those kv_heads in every layer.
  * Head indices are kv_head indices: with GQA each one serves a group of query heads
    (3 per kv_head on the embedded SmolLM2-135M).
  * Reported for baseline and pruned, with the % change: continuation perplexity; latency of the
    continuation forward and of decoding 32 tokens after it (median of --repeats after a
    warm-up, each against its own cache); KV bytes held for the prompt, from the tensors kept.
  * --strategy NAME --ratio R evicts a fraction R of the prompt tokens per kv_head
    (knorm, streaming, h2o, snapkv, magnitude, random). --quantize K4V2[G32][R64] applies KIVI:
    keys per-channel, values per-token, groups of G, the last R tokens in full precision.

\b
Examples:
  kvscope prune --prune_layers 0,1,2 --prune_heads 2,3
  kvscope prune --strategy knorm --ratio 0.5
  kvscope prune --quantize K4V2
  kvscope prune --sweep --out kvscope-out          # compression_pareto.png, sweep.csv, sweep.json
  kvscope prune --scan layers --out kvscope-out    # prune_scan_layers.png/.json
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


def _check_modes(flags: dict[str, Any]) -> str:
    """Which mode runs: sweep, scan, loo or single; refuse contradictory flag sets."""
    modes = [m for m in ("sweep", "scan", "leave_one_out") if flags[m]]
    if len(modes) > 1:
        raise UsageError("use only one of --sweep, --scan and --leave-one-out")
    pruning = [f"--{n}" for n in ("prune_layers", "prune_heads", "strategy", "quantize") if flags[n] is not None]
    if modes and pruning:
        raise UsageError(f"--{modes[0].replace('_', '-')} chooses its own configurations; drop {', '.join(pruning)}")
    if flags["ratio"] is not None and flags["strategy"] is None:
        raise UsageError("--ratio needs --strategy NAME")
    if flags["repeats"] < 1:
        raise UsageError(f"--repeats must be at least 1, got {flags['repeats']}")
    return modes[0] if modes else "single"


@click.command(context_settings=CONTEXT_SETTINGS, help=HELP)
@model_options
@prompt_options
@click.option("--continuation", default=None, help="Text scored against the pruned cache (default: built-in).")
@click.option("--prune_layers", "--prune-layers", "prune_layers", default=None, help="Layers to evict, e.g. 0,1,2.")
@click.option("--prune_heads", "--prune-heads", "prune_heads", default=None, help="kv_heads to evict, e.g. 2,3.")
@click.option("--strategy", default=None, help="Token eviction: knorm, streaming, h2o, snapkv, magnitude, random.")
@click.option("--ratio", type=float, default=None, help="Fraction of prompt tokens removed, in (0, 1). [0.5]")
@click.option("--quantize", default=None, help="KIVI spec K<bits>V<bits>[G<group>][R<recent>], e.g. K4V2.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs (median) after a warm-up.")
@click.option("--sweep", is_flag=True, help="Every strategy at 0.25/0.5/0.75/0.9 plus K8V8/K4V4/K2V2.")
@click.option("--scan", type=click.Choice(["layers", "heads"]), default=None,
              help="Evict each layer (or kv_head) alone and measure the perplexity change.")
@click.option("--leave-one-out", "--leave_one_out", "leave_one_out", is_flag=True,
              help="Evict each prompt token in turn; write importance_ground_truth.png/.json.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("kvscope-out"), show_default=True,
              help="Folder for figures and data (--sweep, --scan, --leave-one-out).")
@json_option
def prune(model, device, dtype, trust_remote_code, device_map, prompt, prompt_file, truncate, continuation,
          prune_layers, prune_heads, strategy, ratio, quantize, repeats, sweep, scan, leave_one_out, out, as_json):
    from kvscope.prune import report

    setup_logging(quiet=as_json)
    flags = dict(prune_layers=prune_layers, prune_heads=prune_heads, strategy=strategy, ratio=ratio,
                 quantize=quantize, repeats=repeats, sweep=sweep, scan=scan, leave_one_out=leave_one_out)
    mode = _check_modes(flags)
    layers, heads = parse_indices(prune_layers, "--prune_layers"), parse_indices(prune_heads, "--prune_heads")
    spec = _validate_cheap(strategy, ratio, quantize)
    if continuation is not None and not continuation.strip():
        raise UsageError("the continuation is empty: pass --continuation TEXT with at least two tokens")
    from kvscope.prune.texts import DEFAULT_PROMPT

    text = read_prompt(prompt, prompt_file, default=DEFAULT_PROMPT)
    m, tok, info = load(model, device, dtype, trust_remote_code, device_map)
    if layers or heads:
        from kvscope.prune.lab import check_indices

        check_indices(info, layers, heads)
    from kvscope.prune.evict import prefill
    from kvscope.prune.scan import encode_texts

    ids, cont_ids = encode_texts(tok, info, text, continuation, truncate=truncate)
    with stderr_console().status("prefilling the prompt ..."):
        pre = prefill(m, tok, info, ids)
    run = {"single": report.run_single, "sweep": report.run_sweep, "scan": report.run_scan,
           "leave_one_out": report.run_loo}[mode]
    with stderr_console().status(f"measuring ({mode.replace('_', ' ')}) ..."):
        result = run(m, tok, info, pre, cont_ids, text=text, out=out, layers=layers, heads=heads,
                     strategy=strategy, ratio=0.5 if ratio is None else ratio, spec=spec, repeats=repeats,
                     kind=scan)
    if as_json:
        emit_json(result)
    else:
        report.print_result(mode, result)


def _validate_cheap(strategy: str | None, ratio: float | None, quantize: str | None):
    """Check what needs no model (strategy name, ratio, quantize spec) before loading one."""
    from kvscope.prune.lab import check_ratio
    from kvscope.prune.strategies import get_strategy
    from kvscope.quant import parse_spec

    if strategy is not None:
        get_strategy(strategy)
    if ratio is not None:
        check_ratio(ratio)
    return parse_spec(quantize) if quantize is not None else None
