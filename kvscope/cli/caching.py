"""``kvscope caching``: KV caching shown and checked on a real model (figures, caching.json, a table)."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.cli.common import (CONTEXT_SETTINGS, emit_json, json_option, load, model_options, print_table,
                                read_prompt, setup_logging, stderr_console)


def summary_rows(d: dict) -> list[tuple[str, str]]:
    """The stdout table: max abs differences, speedups, share of compute reused."""
    dec, gen, pre = d["decode_step"], d["generation"], d["prefix_reuse"]
    diffs = dec["max_abs_diff"]
    sp = gen["speedup"]
    reuse = (f"{pre['reused_tokens']}/{pre['prompt2_tokens']} tokens, {pre['flops']['share_total']:.1%} of FLOPs "
             f"({pre['flops']['share_attention']:.1%} of attention)" if pre["reused_tokens"]
             else "0 tokens (no shared prefix)")
    return [
        ("layer", str(d["layer"])),
        ("attention by hand vs o_proj input", f"{d['projections']['manual_attention_vs_o_proj_input_max_abs']:.1e}"),
        ("cached decode step vs recompute", f"attention {diffs['attention_row_cached_vs_full']:.1e}, "
                                            f"logits {diffs['logits_cached_vs_full']:.1e}"),
        ("greedy tokens equal (cache / none)", f"{gen['tokens_equal']} ({gen['new_tokens']} tokens)"),
        ("speedup with cache", f"last step {sp['last_step']:.1f}x, total {sp['total']:.1f}x"),
        ("prefix reused", reuse),
        ("prefix time fresh / reuse", f"{pre['seconds_fresh'] * 1e3:.1f} / {pre['seconds_reuse'] * 1e3:.1f} ms"),
        ("reused logits vs fresh run", f"{pre['logits_max_abs_diff']:.1e} "
                                       f"({'match' if pre['logits_match'] else 'MISMATCH'})"),
    ]


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@click.option("-p", "--prompt", default=None, help="First prompt (cached, decoded, drawn). Default: a geography "
                                                    "question behind a short system prompt.")
@click.option("--second-prompt", default=None, help="Second prompt, continued from the first one's cached prefix.")
@click.option("--layer", type=int, default=None, help="Layer to hook and draw. Default: the middle layer.")
@click.option("--new-tokens", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Tokens to decode greedily, with and without the cache, for the timing figure.")
@click.option("--repeats", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Timed runs per measurement (medians are reported).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("kvscope-out/caching"),
              show_default=True, help="Folder for the six figures and caching.json.")
@json_option
def caching(model, device, dtype, trust_remote_code, device_map, prompt, second_prompt, layer, new_tokens,
            repeats, out, as_json):
    """Show KV caching at work, and check it: projections, attention by hand (RoPE, GQA), one cached
    decode step against recomputation, greedy decoding with and without the cache, prefix reuse.

    \b
    Example:
      kvscope caching --layer 3 --out caching-out
      kvscope caching --prompt "Paris is in France." --second-prompt "Paris is in Europe."
    """
    from kvscope.caching.projections import check_layer
    from kvscope.caching.report import DEFAULT_PROMPT, DEFAULT_SECOND_PROMPT, run_caching
    from kvscope.errors import UsageError
    from kvscope.fileio import ensure_dir, write_json
    from kvscope.plots.caching import save_all

    setup_logging(quiet=as_json)
    first = read_prompt(prompt, None, DEFAULT_PROMPT)
    if second_prompt is not None and not second_prompt.strip():
        raise UsageError("the second prompt is empty: pass --second-prompt TEXT with some text")
    second = second_prompt or DEFAULT_SECOND_PROMPT
    ensure_dir(out)
    m, tok, facts = load(model, device, dtype, trust_remote_code, device_map)
    check_layer(facts, layer)
    with stderr_console().status("hooking, decoding, timing and reusing the cache ..."):
        report = run_caching(m, tok, facts, first, second, layer, new_tokens, repeats)
        data = report.to_dict()
        figures = save_all(report, out)
        data["files"] = [str(p) for p in figures] + [str(write_json(out / "caching.json", data))]
    if as_json:
        emit_json(data)
        return
    print_table("kvscope caching", summary_rows(data))
    if not report.prefix.reused:
        stderr_console().print("note: the second prompt shares no prefix with the first; nothing was reused")
    click.echo(f"wrote {len(data['files'])} files to {out}")
