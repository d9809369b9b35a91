"""``kvscope info``: the model facts and the KV bytes each token costs."""

from __future__ import annotations

import click

from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    check_model_options,
    emit_json,
    json_option,
    load,
    model_options,
    print_table,
    setup_logging,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@model_options
@json_option
def info(model, device, dtype, trust_remote_code, device_map, as_json):
    """Print the model's architecture facts and its KV-cache bytes per token.

    \b
    Example:
      kvscope info --model embedded --json
    """
    setup_logging(quiet=as_json)
    check_model_options(device, dtype, device_map)
    facts = load(model, device, dtype, trust_remote_code, device_map).info
    if as_json:
        emit_json(facts.to_dict() | {"group_size": facts.group_size})
        return
    rows = [(k, v) for k, v in facts.to_dict().items()]
    rows.insert(5, ("group_size (q_heads per kv_head)", facts.group_size))
    rows.append(("KV MiB per 1024 tokens", f"{facts.kv_bytes_per_token * 1024 / 2**20:.2f}"))
    print_table("kvscope info", rows)
