"""``kvscope memory``: the GPU memory page (served on 127.0.0.1 or exported) and its calculator.

Importing this module does not import torch; only ``--model PATH/HUB-ID`` (a config to count) does.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from kvscope.cli.common import CONTEXT_SETTINGS, emit_json, json_option, listen, option, serve
from kvscope.errors import UsageError
from kvscope.memory.settings import MemorySettings as S


def warn(message: str) -> None:
    """One warning line on stderr (no logging setup: that would import transformers)."""
    click.echo(f"kvscope: warning: {message}", err=True)


# the parameters that make a calculation (or open the page on them): names as click passes them
CALC_OPTIONS = (
    "model_name",
    "gpu_name",
    "batch",
    "context",
    "tokens",
    "kv_dtype",
    "weight_dtype",
    "mode",
    "flash",
    "tp",
    "page",
    "engine",
    "activation_gib",
    "keep_sliding",
    "block_table",
    "gpu_memory_utilization",
    "max_num_batched_tokens",
    "max_num_seqs",
    "cuda_graph_gib",
)


def summary_rows(est) -> list[tuple[str, str]]:
    """The info panel as (name, value) rows for the terminal."""
    from kvscope.memory.estimate import budget_text, fmt_params
    from kvscope.memory.estimate import fmt_bytes as fb

    model, gpu, r = est.model, est.gpu, est.numbers
    o, pg, fa, cap = r["options"], r["per_gpu"], r["flash"], r["capacity"]
    gpus = (
        str(cap["gpus_required"])
        if cap["gpus_required"]
        else "none: no power-of-two TP up to 1024 dividing q_heads fits"
    )
    full = str(cap["gpus_required_full"]) if cap["gpus_required_full"] else "none with TP alone"
    rows = [
        (
            "model",
            f"{model['name']} ({fmt_params(model['params_total'])} params, "
            f"{fmt_params(model['params_active'])} active)",
        ),
        ("GPU", f"{gpu['name']}: {fb(pg['usable_bytes'])} usable"),
        ("batch x context", f"{o['batch']:,} x {o['context']:,} tokens, mode {o['mode']}"),
        ("KV per token", f"{r['kv_bytes_per_token']:,} B ({o['kv_dtype']})"),
        ("weights", f"{fb(r['weights_bytes'])} ({o['weight_dtype']})"),
        (f"KV for {o['batch']:,} x {o['context']:,}", f"{fb(cap['kv_full_bytes'])} (every slot full; GPUs: {full})"),
        ("KV at the peak", f"{fb(cap['kv_peak_bytes'])} ({cap['basis']})"),
        (
            "  of which",
            f"workload peak {fb(cap['kv_workload_peak_bytes'])} at step {cap['peak_step']:,}; "
            f"one full-context request {fb(cap['kv_longest_request_bytes'])}",
        ),
        ("total at peak", fb(cap["total_peak_bytes"])),
        (
            f"per GPU at peak (tp {pg['tp']})",
            f"{fb(cap['per_gpu_peak_bytes'])} = {cap['occupancy_peak']:.1%} of its memory",
        ),
        (f"GPUs required (peak, {cap['fit_fraction']:.0%} of each)", gpus),
        (
            "memory efficiency",
            f"{r['run_efficiency']:.1%} over the run, {r['step_efficiency']:.1%} at step "
            f"{o['tokens']:,} (paper: 20.4-38.2% before paging)",
        ),
        (
            "prefill scores, 1 layer",
            f"{fb(fa['without_flash'])} without Flash, {fb(fa['with_flash'])} "
            f"with (transient; Flash {'on' if o['flash'] else 'off'})",
        ),
        ("prefill peak per GPU", f"{fb(pg['peak_with_flash'])} with Flash, {fb(pg['peak_without_flash'])} without"),
        (
            "decode bound",
            f"{r['decode']['tokens_per_s']:,.0f} tokens/s for the batch "
            f"({r['decode']['tokens_per_s_per_seq']:,.1f} per sequence)",
        ),
    ]
    e = r["engine"]
    if e:
        total = "logged" if e["cuda_total_measured"] else "nvidia-smi less 450 MiB, estimate"
        act = "given" if e["activation_measured"] else f"estimate for {e['max_num_batched_tokens']:,} tokens"
        rows += [
            (
                f"{e['engine']}: budget",
                f"{fb(e['cuda_total_bytes'])} CUDA total ({total}) x "
                f"{e['gpu_memory_utilization']} = {fb(e['requested_bytes'])}",
            ),
            (
                f"{e['engine']}: minus",
                f"weights {fb(e['weights_bytes'])}, activation {fb(e['activation_bytes'])} "
                f"({act}), non-torch {fb(e['non_torch_bytes'])}, communication "
                f"{fb(e['comm_bytes'])}, CUDA graphs {fb(e['cuda_graph_bytes'])}",
            ),
            (f"{e['engine']}: available KV", budget_text(e["available_kv_bytes"])),
            (f"{e['engine']}: KV cache size", f"{e['kv_tokens']:,} tokens, {e['kv_blocks']:,} blocks"),
            (
                f"{e['engine']}: max concurrency",
                f"{e['max_concurrency']:.2f}x at {o['context']:,} tokens"
                + ("" if e["max_concurrency"] >= 1 else " (under 1: vLLM refuses to start)"),
            ),
        ]
    return rows


def calculate(est, block_table: bool, as_json: bool) -> None:
    from kvscope.cli.common import print_table
    from kvscope.memory import formulas

    result = est.to_dict()
    if block_table:
        result["block_table"] = formulas.block_table(est.slots, est.options["page"])
    if as_json:
        emit_json(result)
    else:
        print_table("kvscope memory", summary_rows(est))


@click.command(context_settings=CONTEXT_SETTINGS)
@option(
    "-m",
    "--model",
    "model_name",
    default=S.model_name,
    show_default=True,
    help="Catalog id (see --list), a path to a config.json, or a Hugging Face id.",
)
@option("-g", "--gpu", "gpu_name", default=S.gpu_name, show_default=True, help="Catalog id (see --list).")
@option("-b", "--batch", default=S.batch, show_default=True, type=int, help="Sequences in the batch (slots).")
@option("-c", "--context", default=S.context, show_default=True, type=int, help="Maximum tokens per sequence.")
@option("--tokens", default=None, type=int, help="Step of the run drawn (default: --context, the end).")
@option("--kv-dtype", default=S.kv_dtype, show_default=True, help="bf16, fp16, fp32, fp8, int8, int4.")
@option(
    "--weight-dtype",
    default=None,
    help="bf16, fp16, fp32, fp8, int8, int4 (default: as the model ships, fp8 for DeepSeek-V3, else bf16).",
)
@option("--mode", default=S.mode, show_default=True, help="static, cb (continuous batching), paged.")
@option("--flash/--no-flash", default=S.flash, show_default=True, help="FlashAttention during prefill.")
@option("--tp", default=S.tp, show_default=True, type=int, help="Tensor-parallel GPUs.")
@option("--page", default=S.page, show_default=True, type=int, help="Tokens per KV page (paged mode).")
@option("--engine", default=None, help="Budget like an engine at start-up: vllm.")
@option(
    "--gpu-memory-utilization",
    default=S.gpu_memory_utilization,
    show_default=True,
    type=float,
    help="Fraction of each GPU that weights + KV may fill for 'GPUs required' (of nvidia-smi's memory) and "
    "that vLLM may use (of the CUDA-visible total); the rest is left for activations and the Flash workspace.",
)
@option(
    "--max-num-batched-tokens",
    default=S.max_num_batched_tokens,
    show_default=True,
    type=int,
    help="vLLM: tokens of the profiling forward (sets the activation estimate).",
)
@option("--max-num-seqs", default=S.max_num_seqs, show_default=True, type=int, help="vLLM: sequences per step.")
@option("--activation-gib", default=None, type=float, help="vLLM: the logged activation peak (else estimated).")
@option("--cuda-graph-gib", default=None, type=float, help="vLLM: CUDA-graph memory (default 0.5 GiB).")
@option("--keep-sliding", is_flag=True, help="Sliding-window layers keep every token (engine frees none).")
@option("--block-table", is_flag=True, help="With --json: per-slot pages and last-page fill.")
@option("--trust-remote-code", is_flag=True, help="Allow a hub config's own Python code.")
@option(
    "--export",
    "export",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the page as one self-contained HTML file.",
)
@option("--serve", "force_serve", is_flag=True, help="Serve the page starting at the given options.")
@option("--port", default=0, type=int, help="Port for the page (default: a free one).")
@option("--no-browser", is_flag=True, help="Serve without opening a browser.")
@option("--list", "list_catalog", is_flag=True, help="List the catalog's models, GPUs and dtypes.")
@json_option
@click.pass_context
def memory(
    ctx,
    model_name,
    gpu_name,
    trust_remote_code,
    block_table,
    export,
    force_serve,
    port,
    no_browser,
    list_catalog,
    as_json,
    **kw,
):
    """GPU memory of LLM inference: weights, KV cache, batching, paging and FlashAttention.

    \b
    Without calculator options it serves an interactive page on 127.0.0.1; --model or --gpu alone
    open it on that model/GPU. With other options (or --json) it prints the numbers the page shows
    (kvscope.memory.estimate_memory).
    \b
    Examples:
      kvscope memory                                  # open the page
      kvscope memory --export memory.html             # one self-contained file
      kvscope memory --model llama-3.1-8b --gpu h100-sxm --batch 32 --context 8192 --kv-dtype fp8 --json
      kvscope memory --model qwen3-8b --engine vllm   # what vLLM would log at start-up
    """
    from kvscope.memory.estimate import estimate_memory

    if list_catalog and (export is not None or force_serve):
        raise UsageError("--list prints the catalog: it does not go with --export or --serve")
    if list_catalog:
        return _list(as_json)
    if export is not None:
        from kvscope.fileio import check_out_file

        check_out_file(export, "--export")
    if [bool(as_json), export is not None, force_serve].count(True) > 1:
        raise UsageError("--json, --export and --serve are different outputs: choose one")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65,535 (got {port:,})")
    given = {n for n in CALC_OPTIONS if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
    est = estimate_memory(model_name, gpu_name, trust_remote_code=trust_remote_code, **kw)  # validates all
    for w in est.warnings:
        warn(w)
    page = export is not None or force_serve or not (given - {"model_name", "gpu_name"} or as_json)
    if not page:
        return calculate(est, block_table, as_json)
    from kvscope.memory import catalog

    extra = [] if catalog.lookup_or_none(model_name) else [est.model]
    initial = _initial(est, kw) if given else {}
    data = catalog.page_data(extra, initial)
    if export is not None:
        from kvscope.fileio import write_text
        from kvscope.memory.page import export_html

        write_text(export, export_html(data))
        click.echo(f"kvscope memory: wrote {export}", err=True)
        return None
    from urllib.parse import urlencode

    from kvscope.memory.server import make_server

    server = listen(lambda p: make_server(data, p), port)
    return serve(server, "memory", not no_browser, "?" + urlencode(initial) if initial else "")


def _initial(est, kw: dict) -> dict:
    """The page's starting state (its URL parameters), from validated options."""
    o = est.options
    q = {
        "model": est.model["id"],
        "gpu": est.gpu["id"],
        "batch": o["batch"],
        "context": o["context"],
        "kv": o["kv_dtype"],
        "w": o["weight_dtype"],
        "cb": int(o["mode"] != "static"),
        "paged": int(o["mode"] == "paged"),
        "flash": int(o["flash"]),
        "tp": o["tp"],
        "engine": int(bool(o["engine"])),
        "util": o["gpu_memory_utilization"],
        "mnbt": o["max_num_batched_tokens"],
        "mns": o["max_num_seqs"],
    }
    if kw.get("tokens") is not None:
        q["tokens"] = o["tokens"]
    return q


def _list(as_json: bool) -> None:
    from kvscope.cli.common import print_table
    from kvscope.memory import catalog, formulas

    listing = {
        "models": list(catalog.models()),
        "gpus": list(catalog.gpus()),
        "kv_dtypes": list(formulas.KV_DTYPES),
        "weight_dtypes": list(formulas.WEIGHT_DTYPES),
        "modes": list(formulas.MODES),
        "engines": list(formulas.ENGINES),
    }
    if as_json:
        emit_json(listing)
    else:
        print_table("kvscope memory --list", [(k, ", ".join(v)) for k, v in listing.items()])
