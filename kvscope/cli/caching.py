"""``kvscope caching``: a thin client of ``kvscope.caching.explain_caching`` (figures, caching.json, a table)."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    check_out,
    emit_json,
    force_option,
    json_option,
    load,
    model_options,
    print_table,
    read_prompt,
    setup_logging,
    stderr_console,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@click.option(
    "-p",
    "--prompt",
    default=None,
    help="First prompt (cached, decoded, drawn). Default: a geography question behind a short system prompt.",
)
@click.option("--second-prompt", default=None, help="Second prompt, continued from the first one's cached prefix.")
@click.option("--layer", type=int, default=None, help="Layer to hook and draw. Default: the middle layer.")
@click.option(
    "--new-tokens",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="Tokens to decode greedily, with and without the cache, for the timing figure.",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Timed runs per measurement (medians are reported).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("kvscope-caching"),
    show_default=True,
    help="Folder for the six figures and caching.json (a folder holding other files is refused unless --force).",
)
@force_option
@json_option
def caching(
    model,
    device,
    dtype,
    trust_remote_code,
    device_map,
    prompt,
    second_prompt,
    layer,
    new_tokens,
    repeats,
    out,
    force,
    as_json,
):
    """Show KV caching at work, and check it: projections, attention by hand (RoPE, GQA), one cached
    decode step against recomputation, greedy decoding with and without the cache, prefix reuse.

    \b
    Example:
      kvscope caching --layer 3 --out caching-out
      kvscope caching --prompt "Paris is in France." --second-prompt "Paris is in Europe."
    """
    from kvscope.caching.explain import DEFAULT_PROMPT, check_second_prompt, explain_caching
    from kvscope.configcheck import check_layer

    setup_logging(quiet=as_json)
    first = read_prompt(prompt, None, DEFAULT_PROMPT)
    second = check_second_prompt(second_prompt)
    check_out(out, "caching", force)
    m, tok, facts = load(model, device, dtype, trust_remote_code, device_map)
    check_layer(layer, facts.layers)
    report = explain_caching(
        m, tok, first, second, layer=layer, new_tokens=new_tokens, repeats=repeats, info=facts, quiet=as_json
    )
    files = report.save(out, force=force)
    if as_json:
        emit_json({**report.to_dict(), "files": [str(p) for p in files]})
        return
    print_table("kvscope caching", report.summary_rows())
    if not report.prefix.reused:
        stderr_console().print("note: the second prompt shares no prefix with the first; nothing was reused")
    click.echo(f"wrote {len(files)} files to {out}")
