"""Rich tables for ``kvscope prune``'s results (the JSON-ready dicts the CLI prints with ``--json``)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from kvscope.prune.summaries import EXAMPLE_NOTE


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.3f}{unit}" if abs(x) < 1e4 else f"{x:,.0f}{unit}"
    return f"{x:,}{unit}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f} %"


def _ms(m: dict[str, Any], key: str) -> str:
    spread = m.get(f"{key}_range")
    return _fmt(m[key]) + (f" ({spread[0]:,.1f}-{spread[1]:,.1f})" if spread else "")


def _notes(console: Any, d: dict[str, Any]) -> None:
    """The strategies' guardrail warnings, then the reminder that one text is an example."""
    for w in dict.fromkeys(d.get("warnings", [])):
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    console.print(EXAMPLE_NOTE)


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
    within = d["within_spread"]
    for key, label in (
        ("continuation_ms", "continuation forward ms"),
        ("decode_ms", f"decode {d['decode_tokens']} tokens ms"),
    ):
        note = " (within spread)" if within[key] else ""
        t.add_row(label, _ms(b, key), _ms(p, key), _signed(ch[key]) + note)
    t.add_row(f"KV cache bytes ({d['cache_dtype']})", _fmt(b["kv_bytes"]), _fmt(p["kv_bytes"]), _signed(ch["kv_bytes"]))
    t.add_row(
        "KV cache bytes (float16)", _fmt(b["kv_bytes_fp16"]), _fmt(p["kv_bytes_fp16"]), _signed(ch["kv_bytes_fp16"])
    )
    console.print(t)
    masked = (
        f". Layers {p['masked_layers']} are masked, not cut (their kv_heads keep different counts): "
        f"the KV bytes row counts the kept entries, a per-head layout's size, while this simulation "
        f"holds {p['held_bytes']:,} bytes"
        if p["masked_layers"]
        else ""
    )
    console.print(
        f"{d['prompt_tokens']} prompt tokens prefilled {d['prefills']} time(s) in {d['prefill_seconds']:.2f} s; "
        f"{d['scored_tokens']} continuation tokens scored; torch threads {d['torch_threads']}. "
        f"Head indices are kv_heads: each serves {d['group_size']} of {d['q_heads']} query heads "
        f"(GQA){masked}. Latencies: median (min-max) of {d['repeats']} runs; a change within "
        "the spread is noise. KV bytes: the prompt's cache as kept."
    )
    _notes(console, d)


def _print_sweep(console: Any, d: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"kvscope prune --sweep ({d['model']}, baseline ppl {d['baseline_ppl']:.3f})")
    for col in ("method", "setting", "ppl", "ppl change", "KV bytes", "kept", "kept (float16)"):
        t.add_column(col)
    for r in d["rows"]:
        t.add_row(
            r["method"],
            r["setting"],
            _fmt(r["ppl"]),
            _signed(r["ppl_change_pct"]),
            _fmt(r["kv_bytes"]),
            f"{100 * r['kv_fraction']:.1f} %",
            f"{100 * r['kv_fraction_fp16']:.1f} %",
        )
    console.print(t)
    console.print(
        f"{d['prefills']} prefill(s), {d['prefill_seconds']:.2f} s; {len(d['rows'])} continuation passes "
        f"{d['continuation_seconds']:.2f} s. Wrote {', '.join(d['files'])}"
    )
    _notes(console, d)


def _print_loo(console: Any, d: dict[str, Any]) -> None:
    rho = ", ".join(f"{k} {v:+.2f}" for k, v in d["spearman"].items())
    console.print(
        f"leave-one-out over {len(d['tokens'])} prompt tokens; Spearman vs ground truth: {rho}. "
        f"Wrote {', '.join(d['files'])}"
    )


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
