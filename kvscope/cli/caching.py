"""``kvscope caching``: a thin client of ``kvscope.caching.explain_caching`` (figures, caching.json, a table)."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.caching.settings import CachingSettings as S
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
    print_table,
    read_prompt,
    repeats_option,
    setup_logging,
    stderr_console,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@option(
    "-p",
    "--prompt",
    "prompt",
    default=None,
    help="First prompt (cached, decoded, drawn). Default: a geography question behind a short system prompt.",
)
@option(
    "--second-prompt",
    "second_prompt",
    default=None,
    help="Second prompt, continued from the first one's cached prefix.",
)
@option("--layer", "layer", type=int, default=S.layer, help="Layer to hook and draw. Default: the middle layer.")
@option(
    "--new-tokens",
    "new_tokens",
    type=click.IntRange(1, 4096),
    default=S.new_tokens,
    show_default=True,
    help="Tokens to decode greedily, with and without the cache, for the timing figure.",
)
@repeats_option(S.repeats, "Timed runs per measurement (medians are reported).", type=click.IntRange(1, 50))
@out_option(
    S.out,
    "Folder for the six figures and caching.json (a folder holding other files is refused unless --force).",
    type=click.Path(file_okay=False, path_type=Path),
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
    print_table("kvscope caching", report.details())
    if not report.prefix.reused:
        stderr_console().print("note: the second prompt shares no prefix with the first; nothing was reused")
    click.echo(f"wrote {len(files)} files to {out}")
