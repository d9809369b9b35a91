"""``kvscope analyze``: every figure of the KV cache of one prompt, plus metrics.json and report.html."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.cli.common import (CONTEXT_SETTINGS, emit_json, json_option, model_options, print_table,
                                prompt_options, setup_logging, stderr_console)


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@prompt_options
@click.option("--snapshot", type=click.Path(path_type=Path), default=None,
              help="Analyze a saved .kvs capture instead (no model is loaded).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("kvscope-out"), show_default=True,
              help="Folder for the figures, metrics.json and report.html.")
@click.option("--format", "fmt", type=click.Choice(["png", "svg"]), default="png", show_default=True)
@click.option("--layer", type=int, default=None, help="Layer for PCA and head specialization [middle].")
@click.option("--sparsity-threshold", type=click.FloatRange(min=0.0), default=1e-5, show_default=True,
              help="|x| below this counts as zero.")
@click.option("--sink-share", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.2, show_default=True,
              help="Attention share (per query that sees the token) above which a token is a sink in a layer.")
@click.option("--ground-truth", type=click.Path(path_type=Path), default=None,
              help="importance_ground_truth.json from 'kvscope prune --leave-one-out' [OUT/that file if present].")
@click.option("--scan/--no-scan", "do_scan", default=None,
              help="Also measure the perplexity change of evicting each layer (slow: one scored pass per layer).")
@click.option("--scan-heads", is_flag=True, help="Also measure each (layer, kv_head): slower.")
@click.option("--continuation", default=None, help="Text scored by the scan [built in for the default prompt].")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Processes that draw figures (2 did not help on a busy 2-core machine; see BENCHMARKS.md).")
@click.option("--threads", type=int, default=None,
              help="Torch threads for the capture [torch's default]. On a busy machine 1 can be far faster.")
@json_option
def analyze(model, device, dtype, trust_remote_code, device_map, prompt, prompt_file, truncate, snapshot, out,
            fmt, layer, sparsity_threshold, sink_share, ground_truth, do_scan, scan_heads, continuation, jobs, threads, as_json):
    """Analyze the KV cache of PROMPT: 17 figures, metrics.json and a self-contained report.html.

    \b
    Example:
      kvscope analyze --prompt "Alice paid 42 euros in Paris." --out kvscope-out
    """
    from kvscope.report.command import run

    from rich.markup import escape

    setup_logging(quiet=as_json)
    result = run(model=model, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                 device_map=device_map, prompt=prompt, prompt_file=prompt_file, truncate=truncate,
                 snapshot=snapshot, out=out, fmt=fmt, layer=layer, sparsity_threshold=sparsity_threshold,
                 sink_share=sink_share,
                 ground_truth=ground_truth, do_scan=do_scan, scan_heads=scan_heads, continuation=continuation,
                 jobs=max(1, jobs), threads=threads)
    head = result.metrics["headline"]
    written = sum(1 for f in result.metrics["figures"].values() if "files" in f)
    summary = {"out": str(result.out), "model": result.metrics["model"]["name"], "tokens": head["tokens"],
               "figures": f"{written} of {len(result.metrics['figures'])}",
               "report": str(result.out / "report.html"), "verdict": head.get("verdict", "n/a"),
               "seconds": {k: round(v, 2) for k, v in result.timing.items()}}
    if as_json:
        emit_json(summary)
    else:
        print_table("kvscope analyze", list(summary.items()))
        for w in result.metrics["warnings"]:
            stderr_console().print(f"[yellow]note:[/yellow] {escape(w)}", markup=True, highlight=False)
