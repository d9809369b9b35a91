"""``kvscope analyze``: every figure of the KV cache of one prompt (or aggregated over many), plus
metrics.json and report.html. Parses flags, calls ``kvscope.analyze.command.analyze_into`` and prints."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kvscope.analyze.prompt_set import default_prompts
from kvscope.analyze.registry import FIGURES
from kvscope.analyze.settings import AnalyzeSettings as S
from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    emit_json,
    force_option,
    json_option,
    model_options,
    option,
    out_option,
    print_table,
    prompt_options,
    setup_logging,
    stderr_console,
    threads_option,
)


def _check_options(prompt, prompt_file, prompts, snapshot, ground_truth, threads, layer, model) -> None:
    """Every check that needs no model: runs before anything is loaded or written."""
    from kvscope.analyze.command import check_before_loading
    from kvscope.errors import UsageError

    given = [
        n
        for n, v in (
            ("--prompt", prompt),
            ("--prompt-file", prompt_file),
            ("--prompts", prompts),
            ("--snapshot", snapshot),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise UsageError(f"give only one of {', '.join(given)}")
    check_before_loading(model=model, snapshot=snapshot, ground_truth=ground_truth, threads=threads, layer=layer)


# Options that only a one-prompt run uses: a many-prompt run refuses them (issue 23 item 8).
ONE_PROMPT_ONLY = {
    "do_scan": ("--scan", "the layer scan measures one prompt's continuation"),
    "scan_heads": ("--scan-heads", "the head scan measures one prompt's continuation"),
    "continuation": ("--continuation", "it is scored by the scan, which runs on one prompt"),
    "cache_scale": ("--cache-scale", "kv_cache_layers is drawn for one prompt only"),
    "cache_norm": ("--cache-norm", "kv_cache_layers is drawn for one prompt only"),
}


def _check_many(given: dict) -> None:
    """Refuse, before anything loads, an option that ``--prompts`` would otherwise drop without a word."""
    from kvscope.errors import UsageError

    ctx = click.get_current_context()
    for name, (flag, why) in ONE_PROMPT_ONLY.items():
        source = ctx.get_parameter_source(name)
        if given[name] not in (None, False) and source is not None and source.name != "DEFAULT":
            raise UsageError(f"{flag} applies to one prompt, not to --prompts: {why} (use --prompt or --prompt-file)")


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@prompt_options
@click.option(
    "--prompts",
    default=None,
    help="Many prompts: a JSONL file with a 'text' field per line, a folder of .txt files, or "
    f"'default' ({len(default_prompts())} built-in texts). Figures are aggregated with 95 % "
    "bootstrap intervals.",
)
@click.option(
    "--snapshot",
    type=click.Path(path_type=Path),
    default=None,
    help="Analyze a saved .kvs capture instead (no model is loaded).",
)
@out_option(
    S.out,
    "Folder for the figures, metrics.json and report.html (kvscope's own earlier files replaced; "
    "a folder holding other files is refused unless --force).",
)
@option("--format", "fmt", type=click.Choice(["png", "svg"]), default=S.fmt, show_default=True)
@option("--layer", "layer", type=int, default=S.layer, help="Layer for PCA and the head scatter [middle].")
@option(
    "--sparsity-threshold",
    "sparsity_threshold",
    type=click.FloatRange(min=0.0),
    default=S.sparsity_threshold,
    show_default=True,
    help="|x| below this counts as zero.",
)
@option(
    "--sink-share",
    "sink_share",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=S.sink_share,
    show_default=True,
    help="Attention share (per query that sees the token) above which a token is a sink in a layer.",
)
@option(
    "--cache-scale",
    "cache_scale",
    type=click.Choice(["layer", "shared"]),
    default=S.cache_scale,
    show_default=True,
    help="Colour scale of the cache heatmaps: one per layer, or one shared by all layers.",
)
@option(
    "--cache-norm",
    "cache_norm",
    type=click.Choice(["auto", "clip", "log"]),
    default=S.cache_norm,
    show_default=True,
    help="Linear clipped at the 99.5th percentile, log, or auto (log when one element dominates).",
)
@click.option(
    "--ground-truth",
    type=click.Path(path_type=Path),
    default=None,
    help="importance_ground_truth.json from 'kvscope prune --leave-one-out' [OUT/that file if present]. "
    "With --prompts it is used for the prompt whose token ids it was measured on.",
)
@click.option(
    "--scan/--no-scan",
    "do_scan",
    default=None,
    help="Also measure the perplexity change of evicting each layer (slow: one scored pass per layer).",
)
@click.option("--scan-heads", is_flag=True, help="Also measure each (layer, kv_head): slower.")
@click.option("--continuation", default=None, help="Text scored by the scan [built in for the default prompt].")
@threads_option
@force_option
@json_option
def analyze(
    model,
    device,
    dtype,
    trust_remote_code,
    device_map,
    prompt,
    prompt_file,
    truncate,
    prompts,
    snapshot,
    out,
    fmt,
    layer,
    sparsity_threshold,
    sink_share,
    cache_scale,
    cache_norm,
    ground_truth,
    do_scan,
    scan_heads,
    continuation,
    threads,
    force,
    as_json,
):
    """Analyze the KV cache of PROMPT: every figure, metrics.json and a self-contained report.html.

    \b
    Examples:
      kvscope analyze --prompt "Alice paid 42 euros in Paris." --out kvscope-out
      kvscope analyze --prompts default --out many-out      # aggregated over the built-in texts
    """
    from kvscope.analyze.command import analyze_into, package_text
    from kvscope.cli.common import check_out, load, read_prompt

    setup_logging(quiet=as_json)
    _check_options(prompt, prompt_file, prompts, snapshot, ground_truth, threads, layer, model)
    if prompts is not None:
        given = dict(do_scan=do_scan, scan_heads=scan_heads, continuation=continuation, cache_scale=1, cache_norm=1)
        _check_many(given)
    prompts_path = Path(prompts) if prompts is not None and os.path.lexists(prompts) else None
    check_out(out, "analyze", force, [snapshot, ground_truth, prompt_file, prompts_path])
    texts = None
    if prompts is not None:
        from kvscope.analyze.prompt_set import load_prompts

        texts = load_prompts(prompts)
    elif snapshot is None:
        texts = [read_prompt(prompt, prompt_file, package_text("default_prompt.txt"))]
    is_default = prompt is None and prompt_file is None and prompts is None and snapshot is None
    one_prompt = None
    if prompts is None:
        cont = continuation or (package_text("default_continuation.txt") if is_default else None)
        one_prompt = dict(
            cache_scale=cache_scale, cache_norm=cache_norm, scan_layers=bool(do_scan), scan_heads=scan_heads
        )
        one_prompt.update({"continuation": cont} if snapshot is None else {})
    result, timing = analyze_into(
        out,
        texts=texts,
        snapshot=snapshot,
        loader=lambda: _kept_to_the_end(lambda: load(model, device, dtype, trust_remote_code, device_map)),
        threads=threads,
        truncate=truncate,
        ground_truth=ground_truth,
        force=force,
        quiet=as_json,
        status=stderr_console().status,
        one_prompt=one_prompt,
        layer=layer,
        sparsity_threshold=sparsity_threshold,
        sink_share=sink_share,
        fmt=fmt,
    )
    _summary(result, out, timing, as_json)


def _kept_to_the_end(load):
    """``load()`` (the model) with the garbage collector off, then every object alive frozen out of its
    sight (``gc.freeze``): this process keeps torch, transformers and the model to its end, and each full
    collection (four while transformers loads, more while the figures are drawn, one at exit) would walk
    their ~450,000 objects again, about 1 s of CPU of a default run's 11 (benchmarks/results/analyze.md).
    Here only, not in the library: a notebook's objects must stay collectable."""
    import gc

    gc.disable()
    try:
        loaded = load()
    finally:
        gc.freeze()
        gc.enable()
    return loaded


def _summary(result, out: Path, timing: dict[str, float], as_json: bool) -> None:
    from rich.markup import escape

    m = result.metrics
    written = sum(1 for f in m["figures"].values() if "files" in f)
    size = m["prompt"].get("tokens")
    summary = {
        "out": str(out),
        "model": m["model"]["name"],
        "tokens": size,
        "figures": f"{written} of {len(FIGURES)}",
        "report": str(out / "report.html"),
        "verdict": result.verdict,
        "seconds": {k: round(v, 2) for k, v in timing.items()},
    }
    if as_json:
        emit_json(summary)
    else:
        print_table("kvscope analyze", list(summary.items()))
        for w in m["warnings"]:
            stderr_console().print(f"[yellow]note:[/yellow] {escape(w)}", markup=True, highlight=False)
