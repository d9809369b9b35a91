"""``kvscope capture``: run one forward pass and save the KV cache as a ``.kvs`` snapshot."""

from __future__ import annotations

import click

from kvscope.capture.settings import CaptureSettings as S
from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    check_model_options,
    check_snapshot_out,
    emit_json,
    json_option,
    load,
    model_options,
    option,
    out_option,
    print_table,
    prompt_options,
    read_prompt,
    setup_logging,
    stderr_console,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@prompt_options
@out_option(None, "Snapshot folder to write, e.g. run.kvs (written atomically).", required=True)
@option(
    "--attention",
    "attention",
    is_flag=True,
    default=S.attention,
    help="Also record attention received per key (bounded memory).",
)
@option(
    "--pre-rope",
    "pre_rope",
    is_flag=True,
    default=S.pre_rope,
    help="Also record keys before RoPE (hook on k_proj / k_norm).",
)
@option("--queries", "queries", is_flag=True, default=S.queries, help="Also record per-layer post-RoPE query vectors.")
@json_option
def capture(
    model,
    device,
    dtype,
    trust_remote_code,
    device_map,
    prompt,
    prompt_file,
    truncate,
    out,
    attention,
    pre_rope,
    queries,
    as_json,
):
    """Capture the KV cache of PROMPT (post-RoPE keys and values, float32) into a snapshot.

    \b
    Example:
      kvscope capture --prompt "The cat sat on the mat." --out cat.kvs --attention
    """
    from kvscope.capture.capturing import capture as run

    setup_logging(quiet=as_json)
    check_snapshot_out(out)
    check_model_options(device, dtype, device_map)
    text = read_prompt(prompt, prompt_file)
    m, tok, facts = load(model, device, dtype, trust_remote_code, device_map)
    with stderr_console().status("capturing ..."):
        snap = run(m, tok, text, info=facts, attention=attention, pre_rope=pre_rope, queries=queries, truncate=truncate)
        path = snap.save(out)
    summary = {
        "snapshot": str(path),
        "model": facts.name,
        "tokens": snap.n_positions,
        "layers": snap.n_layers,
        "kv_heads": facts.kv_heads,
        "head_dim": facts.head_dim,
        "kv_bytes_float32": snap.nbytes(),
        "attention": snap.has_attention,
        "pre_rope": snap.pre_rope_keys is not None,
        "queries": snap.queries is not None,
    }
    if as_json:
        emit_json(summary)
    else:
        print_table("kvscope capture", list(summary.items()))
