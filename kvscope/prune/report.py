"""Run one ``kvscope prune`` mode on a prefill, write its files and print its table.

Each ``run_*`` returns a JSON-ready dict (what ``--json`` prints); files are written atomically
into ``out``. ``print_result`` renders the same dict as rich tables on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kvscope.fileio import ensure_dir, write_json, write_text
from kvscope.models import ModelInfo
from kvscope.prune.evict import Prefill


def run_single(model: Any, tok: Any, info: ModelInfo, pre: Prefill, cont_ids: torch.Tensor, *, layers=None,
               heads=None, strategy=None, ratio=0.5, spec=None, repeats=5, **_: Any) -> dict[str, Any]:
    from kvscope.prune.lab import compare, make_plan

    plan = make_plan(info, pre, layers, heads, strategy if strategy else None, ratio, spec)
    rep = compare(model, info, pre, cont_ids, plan, repeats=repeats)
    return {**rep.to_dict(), "prefill_seconds": pre.seconds, "q_heads": info.q_heads,
            "cache_dtype": str(pre.keys[0].dtype).replace("torch.", "")}


def run_sweep(model: Any, tok: Any, info: ModelInfo, pre: Prefill, cont_ids: torch.Tensor, *, out: Path,
              **_: Any) -> dict[str, Any]:
    from kvscope.plots.common import save_figure
    from kvscope.plots.prune import compression_pareto
    from kvscope.prune.sweep import sweep, to_csv

    res = sweep(model, info.name, pre, cont_ids)
    ensure_dir(out)
    files = [write_text(out / "sweep.csv", to_csv(res)), write_json(out / "sweep.json", res.to_dict()),
             save_figure(compression_pareto(res), out / "compression_pareto.png")]
    return {**res.to_dict(), "files": [str(f) for f in files]}


def run_scan(model: Any, tok: Any, info: ModelInfo, pre: Prefill, cont_ids: torch.Tensor, *, out: Path,
             kind: str = "layers", **_: Any) -> dict[str, Any]:
    from kvscope.plots.common import save_figure
    from kvscope.plots.prune import scan_figure
    from kvscope.prune.scan import scan

    res = scan(model, tok, info, kind, pre=pre, cont_ids=cont_ids)
    predicted, definition = _predicted(pre, kind)
    ensure_dir(out)
    data = {**res.to_dict(), "predicted_potential": predicted, "predicted_definition": definition}
    files = [write_json(out / f"prune_scan_{kind}.json", data),
             save_figure(scan_figure(res, predicted, definition), out / f"prune_scan_{kind}.png")]
    return {**data, "files": [str(f) for f in files]}


def _predicted(pre: Prefill, kind: str):
    """The analyze mode's predicted pruning potential for the same prompt, when that module exists."""
    try:
        from kvscope.analyses.pruning_potential import pruning_potential
    except ImportError:
        return None, "kvscope.analyses.pruning_potential is not installed"
    pot = pruning_potential(pre.snapshot)
    return (pot.layer if kind == "layers" else pot.head), pot.definition


def run_loo(model: Any, tok: Any, info: ModelInfo, pre: Prefill, cont_ids: torch.Tensor, *, out: Path,
            text: str = "", **_: Any) -> dict[str, Any]:
    from kvscope.plots.common import save_figure
    from kvscope.plots.prune import importance_ground_truth
    from kvscope.prune.loo import leave_one_out

    res = leave_one_out(model, info.name, text, pre, cont_ids)
    ensure_dir(out)
    files = [write_json(out / "importance_ground_truth.json", res.ground_truth_json()),
             save_figure(importance_ground_truth(res), out / "importance_ground_truth.png")]
    return {**res.ground_truth_json(), "baseline_loglik": res.baseline_loglik, "spearman": res.spearman,
            "files": [str(f) for f in files]}


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.3f}{unit}" if abs(x) < 1e4 else f"{x:,.0f}{unit}"
    return f"{x:,}{unit}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f} %"


def print_result(mode: str, d: dict[str, Any]) -> None:
    """Rich tables on stdout for one mode's result dict."""
    from rich.console import Console

    PRINTERS[mode](Console(), d)


def _print_single(console: Any, d: dict[str, Any]) -> None:
    from rich.table import Table

    b, p, ch = d["baseline"], d["pruned"], d["change_pct"]
    t = Table(title=f"kvscope prune: {d['plan']}  ({d['model']})")
    for col in ("", "baseline", "pruned", "change"):
        t.add_column(col, justify="right" if col else "left")
    t.add_row("continuation perplexity", _fmt(b["ppl"]), _fmt(p["ppl"]), _signed(ch["ppl"]))
    t.add_row(f"continuation forward (ms, median of {d['repeats']})", _fmt(b["continuation_ms"]),
              _fmt(p["continuation_ms"]), _signed(ch["continuation_ms"]))
    t.add_row(f"decode {d['decode_tokens']} tokens (ms, median)", _fmt(b["decode_ms"]), _fmt(p["decode_ms"]),
              _signed(ch["decode_ms"]))
    t.add_row(f"KV cache bytes (prompt, {d['cache_dtype']})", _fmt(b["kv_bytes"]), _fmt(p["kv_bytes"]),
              _signed(ch["kv_bytes"]))
    console.print(t)
    masked = (f". Layers {p['masked_layers']} are masked, not cut (their kv_heads keep different counts): "
              f"the KV bytes row counts the kept entries, a per-head layout's size, while this simulation "
              f"holds {p['held_bytes']:,} bytes" if p["masked_layers"] else "")
    console.print(f"{d['prompt_tokens']} prompt tokens prefilled once in {d['prefill_seconds']:.2f} s; "
                  f"{d['scored_tokens']} continuation tokens scored; torch threads {d['torch_threads']}. "
                  f"Head indices are kv_heads: each serves {d['group_size']} of {d['q_heads']} query heads "
                  f"(GQA){masked}.")


def _print_sweep(console: Any, d: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"kvscope prune --sweep ({d['model']}, baseline ppl {d['baseline_ppl']:.3f})")
    for col in ("method", "setting", "ppl", "ppl change", "KV bytes", "kept"):
        t.add_column(col)
    for r in d["rows"]:
        t.add_row(r["method"], r["setting"], _fmt(r["ppl"]), _signed(r["ppl_change_pct"]), _fmt(r["kv_bytes"]),
                  f"{100 * r['kv_fraction']:.1f} %")
    console.print(t)
    console.print(f"prefill {d['prefill_seconds']:.2f} s (once); {len(d['rows'])} continuation passes "
                  f"{d['continuation_seconds']:.2f} s. Wrote {', '.join(d['files'])}")


def _print_loo(console: Any, d: dict[str, Any]) -> None:
    rho = ", ".join(f"{k} {v:+.2f}" for k, v in d["spearman"].items())
    console.print(f"leave-one-out over {len(d['tokens'])} prompt tokens; Spearman vs ground truth: {rho}. "
                  f"Wrote {', '.join(d['files'])}")


def _print_scan(console: Any, d: dict[str, Any]) -> None:
    from rich.table import Table

    change = d["ppl_change_pct"]
    t = Table(title=f"kvscope prune --scan {d['kind']} ({d['model']}, baseline ppl {d['baseline_ppl']:.3f})")
    t.add_column("layer")
    if d["kind"] == "layers":
        t.add_column("ppl change when evicted")
        for i, c in enumerate(change):
            t.add_row(str(i), _signed(float(c)))
    else:
        for h in range(len(change[0])):
            t.add_column(f"kv_head {h}")
        for i, row in enumerate(change):
            t.add_row(str(i), *[_signed(float(c)) for c in row])
    console.print(t)
    console.print(f"Wrote {', '.join(d['files'])}")


PRINTERS = {"single": _print_single, "sweep": _print_sweep, "scan": _print_scan, "leave_one_out": _print_loo}
