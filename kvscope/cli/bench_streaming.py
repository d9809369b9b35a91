"""``kvscope bench --task streaming``: the decode-time task (``kvscope.bench.streaming``), run apart from
the other tasks because it feeds long streams teacher-forced under a decode-time budget (one eviction step
per token) instead of judging answers from a prefilled cache."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from kvscope.errors import UsageError

TASK = "streaming"
# bench options the streaming task reads; any other one given on the command line is refused
APPLIES = {
    "model", "device", "dtype", "trust_remote_code", "device_map", "tasks", "samples", "context_tokens",
    "strategies", "seed", "out", "force", "as_json", "budgets",
}  # fmt: skip


def wanted(tasks: tuple[str, ...], budgets: str | None) -> bool:
    """Whether this bench call is the streaming task (``--task streaming`` or ``--budgets``)."""
    return TASK in tasks or budgets is not None


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _flag(ctx: click.Context, name: str) -> str:
    param = next(p for p in ctx.command.params if p.name == name)
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def check(ctx: click.Context) -> dict:
    """The streaming task's arguments from bench's options, every one checked before a model loads."""
    from kvscope.bench import streaming as S

    p = ctx.params
    if p["budgets"] is not None and TASK not in p["tasks"]:
        raise UsageError("--budgets goes with --task streaming")
    if set(p["tasks"]) != {TASK}:
        raise UsageError("--task streaming runs alone: give it without other --task values")
    for name in p:
        if name not in APPLIES and _given(ctx, name):
            raise UsageError(f"{_flag(ctx, name)} does not apply to --task streaming")
    strategies = [s.strip() for s in p["strategies"].split(",") if s.strip()] if p["strategies"] else None
    args = {
        "budgets": S.parse_budgets(p["budgets"]) if p["budgets"] is not None else list(S.DEFAULT_BUDGETS),
        "strategies": strategies if strategies is not None else list(S.DEFAULT_STRATEGIES),
        "samples": S.DEFAULT_SAMPLES if p["samples"] is None else p["samples"],
        "context_tokens": p["context_tokens"] if _given(ctx, "context_tokens") else S.DEFAULT_TOKENS,
        "seed": p["seed"],
    }
    S.validate(args["budgets"], args["strategies"], args["samples"], args["context_tokens"])
    return args


def run(ctx: click.Context) -> None:
    """Check, load the model, run, save the folder, print the table (or the JSON)."""
    from kvscope.bench.streaming import bench_streaming
    from kvscope.cli.common import check_out, emit_json, load, setup_logging

    p = ctx.params
    setup_logging(quiet=p["as_json"])
    args = check(ctx)
    out = Path(p["out"])
    check_out(out, "bench", p["force"])
    m, tok, _info = load(p["model"], p["device"], p["dtype"], p["trust_remote_code"], p["device_map"])
    result = bench_streaming(m, tok, model_name=p["model"], quiet=p["as_json"], **args)
    result.save(out, force=p["force"])
    if p["as_json"]:
        emit_json(result.to_dict(curves=False))
    else:
        print_table(result, out)


def print_table(result, out: Path) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"kvscope bench --task streaming: {result!r}"), title_justify="left")
    for name in ("configuration", "log-ppl after the budget [95 %]", "difference to dense [95 %]", "ppl ratio"):
        table.add_column(name, justify="left" if name == "configuration" else "right")
    for r in result.table:
        table.add_row(
            escape(r.config),
            f"{r.log_ppl[0]:.3f} [{r.log_ppl[1]:.3f}, {r.log_ppl[2]:.3f}]",
            "-" if r.budget is None else f"{r.delta[0]:+.3f} [{r.delta[1]:+.3f}, {r.delta[2]:+.3f}]",
            f"{r.ppl_ratio:.3f}",
        )
    console = Console()
    console.print(table)
    console.print("nats per token over the predictions after the cache fills; bootstrap 95 % intervals over streams")
    console.print(f"wrote {out}/bench.json, samples.jsonl, streaming_ppl.png, streaming_map.png, report.html")
