"""Figures and page of the streaming task (``kvscope.bench.streaming``).

- ``log_ppl_figure``: log-perplexity (NLL of the next token, nats) against position, a running mean over
  ``SMOOTH`` positions of the mean over streams; one panel per budget, one line per strategy, dense in
  black in every panel, the budget marked (after it the cache evicts). As StreamingLLM's Fig. 3 (Xiao et
  al., ICLR 2024).
- ``eviction_maps``: for each strategy at the smallest budget, which positions stream 0's cache holds
  after a few steps (share of (layer, kv_head) slots; rows = steps, columns = positions).
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

SMOOTH = 32  # positions per running mean
COLORS = {
    "window": "#d62728",
    "streaming": "#1f77b4",
    "h2o": "#2ca02c",
    "tova": "#9467bd",
    "knorm": "#ff7f0e",
    "random": "#8c564b",
}


def running_mean(x: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """Trailing mean of ``x`` ``[n]`` over ``width`` entries (fewer at the start), ``[n]``."""
    c = np.cumsum(np.concatenate([[0.0], x]))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - width, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def log_ppl_figure(result: Any) -> Any:
    """One panel per budget: running mean log-perplexity against position, per strategy and dense."""
    budgets = result.settings["budgets"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets) + 1.5, 3.8), sharey=True, squeeze=False)
    dense = result.runs[0].nll.mean(0)
    positions = np.arange(1, len(dense) + 1)
    for ax, budget in zip(axes[0], budgets):
        ax.plot(positions, running_mean(dense), color="black", lw=1.6, label="dense")
        for row, run in zip(result.table, result.runs):
            if row.budget == budget:
                color = COLORS.get(row.strategy)
                ax.plot(positions, running_mean(run.nll.mean(0)), lw=1.1, color=color, label=row.strategy)
        ax.axvline(budget, color="grey", ls="--", lw=0.8)
        ax.set_title(f"budget {budget} tokens per layer and kv_head", fontsize=9)
        ax.set_xlabel("position (token)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"log-perplexity (nats), running mean of {SMOOTH}")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    s = result.settings
    fig.suptitle(
        f"{result.model.get('name')}: {s['samples']} streams x {s['context_tokens']} tokens, one token per step "
        "(StreamingLLM Fig. 3)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def eviction_maps(result: Any) -> Any:
    """One panel per strategy with a map: rows = recorded steps, columns = positions, shade = share held."""
    mapped = [(row, run) for row, run in zip(result.table, result.runs) if run.map]
    fig, axes = plt.subplots(len(mapped), 1, figsize=(9, 1.0 + 1.2 * len(mapped)), sharex=True, squeeze=False)
    for ax, (row, run) in zip(axes[:, 0], mapped):
        held, steps = run.map["held"], run.map["steps"]
        ax.imshow(held, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([0, len(steps) - 1], [f"step {steps[0]}", f"step {steps[-1]}"], fontsize=7)
        ax.set_title(f"{row.config}: positions held (share of layer x kv_head slots), stream 0", fontsize=8)
    axes[-1, 0].set_xlabel("position (token)")
    fig.tight_layout()
    return fig


def table_html(result: Any) -> str:
    """The rows as an HTML table (every value escaped)."""
    head = (
        "<tr><th>configuration</th><th>budget</th><th>predictions per stream</th><th>log-ppl [95 %]</th>"
        "<th>dense, same positions</th><th>difference to dense [95 %]</th><th>ppl ratio</th><th>max held</th>"
        "<th>seconds</th></tr>"
    )
    body = []
    for r in result.table:
        cells = [
            r.config,
            "-" if r.budget is None else r.budget,
            r.predictions,
            f"{r.log_ppl[0]:.3f} [{r.log_ppl[1]:.3f}, {r.log_ppl[2]:.3f}]",
            f"{r.dense_log_ppl:.3f}",
            f"{r.delta[0]:+.3f} [{r.delta[1]:+.3f}, {r.delta[2]:+.3f}]",
            f"{r.ppl_ratio:.3f}",
            "-" if r.max_held is None else r.max_held,
            f"{r.seconds:.0f}",
        ]
        body.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{data}" style="max-width:100%"></p>'


def report_html(result: Any, figures: dict[str, Path]) -> str:
    """The whole self-contained page (figures inlined from the PNG files just written)."""
    from kvscope.bench.bench_html import STYLE
    from kvscope.kit.pages import CSP_META

    s = result.settings
    meta = (
        f"model {result.model.get('name')}; {s['samples']} streams of {s['context_tokens']} tokens (the built-in "
        f"texts joined, a different order per stream), fed one token per step; budgets {s['budgets']}; "
        f"{s['positions']}; seed {s['seed']}; {result.seconds:.0f} s, {result.torch_threads} torch thread(s)"
    )
    images = "".join(_img(path, name) for name, path in figures.items())
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{CSP_META}<title>kvscope bench: streaming</title>"
        f"<style>{STYLE}</style></head><body><h1>kvscope bench: decode-time compression</h1>"
        f"<p>{escape(meta)}</p><p>Reproduces {escape(result.citation)}. Intervals: {escape(result.intervals)}.</p>"
        f"{table_html(result)}{images}</body></html>"
    )
