"""``kvscope memory``: the GPU memory page (served on 127.0.0.1 or exported) and its calculator.

Importing this module does not import torch; only ``--model PATH/HUB-ID`` (a config to count) does.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from kvscope.cli.common import CONTEXT_SETTINGS, emit_json, json_option
from kvscope.errors import UsageError



def warn(message: str) -> None:
    """One warning line on stderr (no logging setup: that would import transformers)."""
    click.echo(f"kvscope: warning: {message}", err=True)

CALC_OPTIONS = ("model", "gpu", "batch", "context", "tokens", "kv_dtype", "weight_dtype", "mode", "flash", "tp",
                "page", "engine", "activation_gib", "keep_sliding", "block_table")


def _choices(name: str) -> list[str]:
    from kvscope.memory import formulas as f

    return list({"kv": f.KV_DTYPES, "w": f.WEIGHT_DTYPES, "mode": f.MODES, "engine": f.ENGINES}[name])


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise UsageError(f"--{name} must be between {low:,} and {high:,} (got {value:,})")


def _choice(name: str, value: str, valid: list[str]) -> str:
    if value not in valid:
        raise UsageError(f"--{name} {value!r} is not valid: use one of {', '.join(valid)}")
    return value


def build_options(model: dict, batch, context, tokens, kv_dtype, weight_dtype, mode, flash, tp, page, engine,
                  activation_gib, keep_sliding) -> dict:
    """Validated calculator options (``formulas.DEFAULTS`` keys); warnings go to stderr."""
    from kvscope.memory import formulas as f

    _check_range("batch", batch, 1, f.MAX_BATCH)
    _check_range("context", context, 1, f.MAX_CONTEXT)
    _check_range("tp", tp, 1, f.MAX_TP)
    _check_range("page", page, 1, 4096)
    if tokens is not None:
        _check_range("tokens", tokens, 0, context)
    if activation_gib is not None and activation_gib < 0:
        raise UsageError("--activation-gib must be zero or positive")
    native = model.get("native_context") or 0
    if native and context > native:
        warn(f"context {context:,} is above {model['name']}'s native window of {native:,} tokens")
    if model["q_heads"] % tp:
        warn(f"tp {tp} does not divide {model['q_heads']} query heads; engines such as vLLM refuse this")
    return f.normalize({"batch": batch, "context": context, "tokens": tokens,
                        "kv_dtype": _choice("kv-dtype", kv_dtype, _choices("kv")),
                        "weight_dtype": _choice("weight-dtype", weight_dtype, _choices("w")),
                        "mode": _choice("mode", mode, _choices("mode")), "flash": flash, "tp": tp, "page": page,
                        "engine": _choice("engine", engine, _choices("engine")) if engine else None,
                        "activation_gib": activation_gib, "free_sliding": not keep_sliding})


def _gib(b: float) -> str:
    return f"{b / 2**30:,.2f} GiB"


def summary_rows(model: dict, gpu: dict, r: dict) -> list[tuple[str, str]]:
    """The info panel as (name, value) rows for the terminal."""
    o, pg, fa = r["options"], r["per_gpu"], r["flash"]
    rows = [("model", f"{model['name']} ({model['params_total'] / 1e9:,.2f} B params, "
                      f"{model['params_active'] / 1e9:,.2f} B active)"),
            ("GPU", f"{gpu['name']}: {_gib(pg['usable_bytes'])} usable"),
            ("batch x context", f"{o['batch']} x {o['context']:,} tokens (step {o['tokens']:,}), mode {o['mode']}"),
            ("KV per token", f"{r['kv_bytes_per_token']:,} B ({o['kv_dtype']})"),
            ("weights", f"{_gib(r['weights_bytes'])} ({o['weight_dtype']})"),
            ("KV reserved / real", f"{_gib(r['kv_reserved_bytes'])} / {_gib(r['kv_real_bytes'])}"),
            ("total resident", _gib(r["total_bytes"])),
            ("memory efficiency", f"{r['efficiency']:.1%} now, {r['run_efficiency']:.1%} over the run "
                                  "(paper: 20.4-38.2% before paging)"),
            (f"per GPU (tp {pg['tp']})", f"{_gib(pg['resident_bytes'])} = {pg['occupancy']:.1%} of HBM"),
            ("GPUs required", str(r["gpus_required"]) if r["gpus_required"]
             else "none: no power-of-two TP up to 1024 dividing q_heads fits"),
            ("prefill scores, 1 layer", f"{_gib(fa['without_flash'])} without Flash, {_gib(fa['with_flash'])} "
                                        f"with (transient; Flash {'on' if o['flash'] else 'off'})"),
            ("prefill peak per GPU", f"{_gib(pg['peak_with_flash'])} with Flash, "
                                     f"{_gib(pg['peak_without_flash'])} without"),
            ("decode bound", f"{r['decode']['tokens_per_s']:,.0f} tokens/s for the batch "
                             f"({r['decode']['tokens_per_s_per_seq']:,.1f} per sequence)")]
    e = r["engine"]
    if e:
        rows += [(f"{e['engine']}: available KV", f"{e['available_kv_bytes'] / 2**30:,.2f} GiB "
                                                   f"(util {e['gpu_memory_utilization']}, activation estimate "
                                                   f"{_gib(e['activation_bytes'])})"),
                 (f"{e['engine']}: KV cache size", f"{e['kv_tokens']:,} tokens, {e['kv_blocks']:,} blocks"),
                 (f"{e['engine']}: max concurrency", f"{e['max_concurrency']:.2f}x at {o['context']:,} tokens")]
    return rows


def calculate(model_name, gpu_name, trust_remote_code, block_table, as_json, **kw) -> None:
    from kvscope.cli.common import print_table
    from kvscope.memory import catalog, formulas

    model = catalog.model(model_name, trust_remote_code=trust_remote_code)
    gpu = catalog.gpu(gpu_name)
    opts = build_options(model, **kw)
    result = formulas.compute(model, gpu, opts)
    slots = result.pop("slots")
    if block_table:
        result["block_table"] = formulas.block_table(slots, opts["page"])
    if as_json:
        emit_json({"model_entry": model, "gpu_entry": gpu, **result})
    else:
        print_table("kvscope memory", summary_rows(model, gpu, result))


def serve(port: int, open_browser: bool, data: dict, query: str) -> None:
    import webbrowser

    from kvscope.memory.server import make_server

    try:
        server = make_server(data, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    url = f"http://127.0.0.1:{server.server_address[1]}/{query}"
    click.echo(f"kvscope memory: serving {url} (Ctrl+C stops)", err=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-m", "--model", "model_name", default="llama-3.1-8b", show_default=True,
              help="Catalog id (see --list), a path to a config.json, or a Hugging Face id.")
@click.option("-g", "--gpu", "gpu_name", default="h100-sxm", show_default=True, help="Catalog id (see --list).")
@click.option("-b", "--batch", default=8, show_default=True, type=int, help="Sequences in the batch (slots).")
@click.option("-c", "--context", default=8192, show_default=True, type=int, help="Maximum tokens per sequence.")
@click.option("--tokens", default=None, type=int, help="Step of the run (default: --context, the end).")
@click.option("--kv-dtype", default="bf16", show_default=True, help="bf16, fp16, fp32, fp8, int8, int4.")
@click.option("--weight-dtype", default="bf16", show_default=True, help="bf16, fp16, fp32, fp8, int8, int4.")
@click.option("--mode", default="paged", show_default=True, help="static, cb (continuous batching), paged.")
@click.option("--flash/--no-flash", default=True, show_default=True, help="FlashAttention during prefill.")
@click.option("--tp", default=1, show_default=True, type=int, help="Tensor-parallel GPUs.")
@click.option("--page", default=16, show_default=True, type=int, help="Tokens per KV page (paged mode).")
@click.option("--engine", default=None, help="Budget like an engine at start-up: vllm.")
@click.option("--activation-gib", default=None, type=float, help="Engine activation peak (default: estimate).")
@click.option("--keep-sliding", is_flag=True, help="Sliding-window layers keep every token (engine frees none).")
@click.option("--block-table", is_flag=True, help="With --json: per-slot pages and last-page fill.")
@click.option("--trust-remote-code", is_flag=True, help="Allow a hub config's own Python code.")
@click.option("--export", "export", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the page as one self-contained HTML file.")
@click.option("--serve", "force_serve", is_flag=True, help="Serve the page starting at the given options.")
@click.option("--port", default=0, type=int, help="Port for the page (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Serve without opening a browser.")
@click.option("--list", "list_catalog", is_flag=True, help="List the catalog's models, GPUs and dtypes.")
@json_option
@click.pass_context
def memory(ctx, model_name, gpu_name, trust_remote_code, block_table, export, force_serve, port, no_browser,
           list_catalog, as_json, **kw):
    """GPU memory of LLM inference: weights, KV cache, batching, paging and FlashAttention.

    \b
    Without calculator options it serves an interactive page on 127.0.0.1; with them it prints the
    same numbers the page shows (same definitions, kvscope/memory/formulas.py).
    \b
    Examples:
      kvscope memory                                  # open the page
      kvscope memory --export memory.html             # one self-contained file
      kvscope memory --model llama-3.1-8b --gpu h100-sxm --batch 32 --context 8192 --kv-dtype fp8 --json
      kvscope memory --model qwen3-8b --engine vllm   # what vLLM would log at start-up
    """
    from kvscope.memory import catalog

    if list_catalog:
        return _list(as_json)
    explicit = any(ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE for n in CALC_OPTIONS)
    if export is not None or force_serve or not (explicit or as_json):
        extra = [] if catalog.lookup_or_none(model_name) else [catalog.model(model_name, trust_remote_code)]
        data = catalog.page_data(extra)
        if export is not None:
            from kvscope.fileio import write_text
            from kvscope.memory.page import export_html

            write_text(export, export_html(data))
            click.echo(f"kvscope memory: wrote {export}", err=True)
            return None
        return serve(port, not no_browser, data, _query(model_name, gpu_name, kw) if explicit else "")
    calculate(model_name, gpu_name, trust_remote_code, block_table, as_json, **kw)
    return None


def _query(model_name: str, gpu_name: str, kw: dict) -> str:
    """URL query carrying the options, read by the page (state lives in the URL)."""
    from urllib.parse import urlencode

    from kvscope.memory import catalog

    mode = kw["mode"]
    q = {"model": catalog.model(model_name)["id"], "gpu": catalog.gpu(gpu_name)["id"], "batch": kw["batch"],
         "context": kw["context"], "kv": kw["kv_dtype"], "w": kw["weight_dtype"],
         "cb": int(mode != "static"), "paged": int(mode == "paged"), "flash": int(kw["flash"]), "tp": kw["tp"]}
    return "?" + urlencode(q)


def _list(as_json: bool) -> None:
    from kvscope.cli.common import print_table
    from kvscope.memory import catalog, formulas

    listing = {"models": list(catalog.models()), "gpus": list(catalog.gpus()), "kv_dtypes": list(formulas.KV_DTYPES),
               "weight_dtypes": list(formulas.WEIGHT_DTYPES), "modes": list(formulas.MODES),
               "engines": list(formulas.ENGINES)}
    if as_json:
        emit_json(listing)
    else:
        print_table("kvscope memory --list", [(k, ", ".join(v)) for k, v in listing.items()])
