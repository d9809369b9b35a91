"""``report.html``: one self-contained page (no external files, no scripts) with the table, the
Pareto figure (embedded PNG) and, for a few samples, the eviction map: the context's tokens shaded
by the share of (layer, kv_head) slots that kept them, one row per strategy, the needle outlined.
Every piece of text from a sample or a setting goes through ``html.escape``."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from kvscope.bench.summary import POOLED
from kvscope.kit.pages import CSP_META

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l{text-align:left}.best{font-weight:bold;background:#e6f4e6}.tied{background:#f4f9f4}
.warn{background:#fff4e0;padding:6px 10px;border-left:4px solid #e69500;margin:4px 0}
.map{font-family:ui-monospace,monospace;font-size:11px;line-height:1.9;white-space:pre-wrap;border:1px solid #ddd;
padding:6px;margin:2px 0 12px}.needle{outline:2px solid #d62728}.lab{font-weight:bold;margin-top:6px}
"""


def cell_html(cell: Any, pct: bool = True) -> str:
    if cell is None or not cell.n:
        return "<td>-</td>"
    return f'<td class="{escape(cell.mark)}">{escape(cell.text(pct))}</td>'


def table_html(result: Any) -> str:
    """The table as HTML (values escaped)."""
    cols = list(result.rows[0].accuracy) if result.rows else []
    has_ppl = any(r.ppl_ratio is not None for r in result.rows)
    head = "".join(f"<th>{escape('accuracy ' + ('(all QA)' if c == POOLED else c))} %</th>" for c in cols)
    head += "<th>text ppl ratio</th>" if has_ppl else ""
    body = []
    for r in result.rows:
        cells = "".join(cell_html(r.accuracy[c]) for c in cols)
        cells += cell_html(r.ppl_ratio, pct=False) if has_ppl else ""
        body.append(
            f'<tr><td class="l">{escape(r.config)}</td>{cells}<td>{100 * r.kv_fraction:.1f}</td>'
            f"<td>{r.kv_bytes / 1024:.0f}</td><td>{r.seconds:.1f}</td></tr>"
        )
    return (
        f"<table><tr><th>configuration</th>{head}<th>KV kept %</th><th>KV KiB</th><th>seconds</th></tr>"
        + "".join(body)
        + "</table>"
    )


def map_html(m: Any) -> str:
    """One sample's eviction map: a row per strategy, each token shaded by its kept share."""
    a, b = m.needle if m.needle else (-1, -1)
    parts = [f"<h3>{escape(m.task)} sample {m.sample}: tokens kept at ratio {m.ratio:g}</h3>"]
    for strategy, shares in m.shares.items():
        ok = m.correct.get(strategy)
        verdict = "correct" if ok else ("wrong" if ok is not None else "")
        spans = []
        for i, (tok, share) in enumerate(zip(m.tokens, shares)):
            if i == a:
                spans.append('<span class="needle">')
            spans.append(
                f'<span style="background:rgba(31,119,180,{0.75 * share:.2f})" '
                f'title="{100 * share:.0f} % kept">{escape(tok)}</span>'
            )
            if i == b - 1:
                spans.append("</span>")
        parts.append(
            f'<div class="lab">{escape(strategy)}: {escape(verdict)}</div><div class="map">' + "".join(spans) + "</div>"
        )
    return "\n".join(parts)


def summary_html(result: Any, figure: bytes | None = None) -> str:
    """Table, warnings and (when given) the figure: the notebook view and the report's top."""
    warn = "".join(f'<div class="warn">{escape(w)}</div>' for w in result.warnings)
    img = (
        (
            f'<p><img alt="accuracy against KV bytes kept" src="data:image/png;base64,'
            f'{base64.b64encode(figure).decode()}" style="max-width:100%"></p>'
        )
        if figure
        else ""
    )
    s = result.settings
    counts = [f"{s['samples']} samples per built-in task"] if any(t != "data" for t in s["tasks"]) else []
    if s.get("data_samples") is not None:
        counts.append(f"{s['data_samples']} of {s['data_lines']} data samples")
    meta = (
        f"model {escape(str(result.model.get('name')))}; tasks {escape(', '.join(s['tasks']))}; "
        f"{' and '.join(counts)}; {s['context_tokens']} context tokens; seed {s['seed']}; "
        f"{escape(s.get('prompt_format', ''))}; "
        f"{result.prefills} prefills; {result.seconds:.0f} s on {result.processes} process(es), "
        f"{result.torch_threads} torch thread(s)"
    )
    return (
        f"<div><p>{meta}</p><p>Cells: value [95 % interval]; * best compressed configuration, ~ tied with it: "
        f"not different on the same samples (exact McNemar test, p &ge; 0.05, for accuracy; paired bootstrap "
        f"interval of the difference containing 0 for perplexity).</p>{table_html(result)}{warn}{img}</div>"
    )


def report_html(result: Any, figure_path: Path | None = None) -> str:
    """The whole page."""
    figure = Path(figure_path).read_bytes() if figure_path else None
    maps = "\n".join(map_html(m) for m in result.maps)
    intro = (
        (
            "<p>Each token is shaded by the share of (layer, kv_head) slots that kept it (dark = kept "
            "everywhere); the needle holding the answer is outlined in red.</p>"
        )
        if maps
        else ""
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{CSP_META}"
        f"<title>kvscope bench</title><style>{STYLE}</style>"
        f"</head><body><h1>kvscope bench</h1>{summary_html(result, figure)}"
        f"<h2>Eviction maps</h2>{intro}{maps}</body></html>"
    )
