"""``_repr_html_`` of the prune results: a small summary table, every text escaped."""

from __future__ import annotations

import html
from typing import Any

EXAMPLE_NOTE = "One text: an example, not a ranking. Compare strategies over many samples with kvscope bench."


def table_html(title: str, header: list[str], rows: list[list[Any]], notes: list[str]) -> str:
    """A titled HTML table with notes under it; every cell and note is escaped."""
    esc = lambda x: html.escape(str(x))  # noqa: E731
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    foot = "".join(f"<p><small>{esc(n)}</small></p>" for n in notes)
    return f"<div><b>{esc(title)}</b><table><tr>{head}</tr>{body}</table>{foot}</div>"


def _ms(m: Any, key: str) -> str:
    median, spread = getattr(m, key), getattr(m, f"{key}_range")
    return "n/a" if median is None else f"{median:.1f} [{spread[0]:.1f}, {spread[1]:.1f}]"


def prune_result_html(r: Any) -> str:
    """Baseline against pruned: perplexity, latencies with their spread, KV bytes."""
    b, p, ch = r.baseline, r.pruned, r.changes()
    sign = lambda x: "n/a" if x is None else f"{x:+.1f} %"  # noqa: E731
    within = r.within_spread()
    rows = [
        ["continuation perplexity", f"{b.ppl:.3f}", f"{p.ppl:.3f}", sign(ch["ppl"])],
        [
            "continuation forward ms, median [min, max]",
            _ms(b, "continuation_ms"),
            _ms(p, "continuation_ms"),
            sign(ch["continuation_ms"]) + (" (within spread)" if within["continuation_ms"] else ""),
        ],
        [
            f"decode {r.decode_tokens} tokens ms",
            _ms(b, "decode_ms"),
            _ms(p, "decode_ms"),
            sign(ch["decode_ms"]) + (" (within spread)" if within["decode_ms"] else ""),
        ],
        [f"KV bytes ({r.cache_dtype})", f"{b.kv_bytes:,}", f"{p.kv_bytes:,}", sign(ch["kv_bytes"])],
        ["KV bytes (float16)", f"{b.kv_bytes_fp16:,}", f"{p.kv_bytes_fp16:,}", sign(ch["kv_bytes_fp16"])],
    ]
    notes = [
        EXAMPLE_NOTE,
        f"{r.prompt_tokens} prompt tokens prefilled {r.prefills} time(s); {r.scored_tokens} "
        f"continuation tokens scored; torch threads {r.torch_threads}.",
        *r.warnings,
    ]
    return table_html(f"kvscope prune: {r.plan} ({r.model})", ["", "baseline", "pruned", "change"], rows, notes)


def sweep_result_html(r: Any) -> str:
    """One row per configuration: perplexity, its change and the KV bytes kept."""
    rows = [
        [
            x.method,
            x.setting,
            f"{x.ppl:.3f}",
            f"{x.ppl_change_pct:+.1f} %",
            f"{x.kv_bytes:,}",
            f"{100 * x.kv_fraction:.1f} %",
            f"{100 * x.kv_fraction_fp16:.1f} %",
        ]
        for x in r.rows
    ]
    notes = [EXAMPLE_NOTE, f"{r.prompt_tokens} prompt tokens, prefilled {r.prefills} time(s).", *r.warnings]
    return table_html(
        f"kvscope prune sweep ({r.model})",
        ["method", "setting", "ppl", "change", "KV bytes", "kept", "kept (float16)"],
        rows,
        notes,
    )
