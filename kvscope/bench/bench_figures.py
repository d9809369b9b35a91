"""Figure for ``kvscope bench``: accuracy against KV bytes kept, one line per strategy, with 95 %
interval bars (Wilson). Uses the pooled QA accuracy when there are several QA tasks; with only text
samples it plots the mean perplexity ratio (bootstrap interval) instead."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from kvscope.bench.summary import POOLED


def _metric(result: Any) -> tuple[str, str, bool]:
    """``(column, y label, is_accuracy)`` for the figure."""
    base = result.rows[0]
    if POOLED in base.accuracy:
        return POOLED, "accuracy, all QA tasks pooled (%)", True
    if base.accuracy:
        task = next(iter(base.accuracy))
        return task, f"accuracy on {task} (%)", True
    return "ppl", "mean perplexity ratio to baseline (text)", False


def _cell(row: Any, column: str) -> Any:
    return row.ppl_ratio if column == "ppl" else row.accuracy.get(column)


def _bars(cells: list[Any], scale: float) -> list[list[float]]:
    """Error-bar lengths ``[below, above]``; a percentile bootstrap interval can miss its own mean, and
    then the bar on that side is drawn with length 0 rather than refused by matplotlib."""
    return [[scale * max(0.0, c.value - c.low) for c in cells], [scale * max(0.0, c.high - c.value) for c in cells]]


def bench_pareto(result: Any) -> Any:
    """Mean KV bytes kept (x, % of the uncompressed context cache) against the task metric (y)."""
    column, ylabel, is_acc = _metric(result)
    scale = 100.0 if is_acc else 1.0
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    methods = [m for m in dict.fromkeys(r.method for r in result.rows) if m != "baseline"]
    for method in methods:
        rows = sorted(
            (r for r in result.rows if r.method == method and _cell(r, column) is not None),
            key=lambda r: -r.kv_fraction,
        )
        if not rows:
            continue
        xs = [100 * r.kv_fraction for r in rows]
        cells = [_cell(r, column) for r in rows]
        ys = [scale * c.value for c in cells]
        err = _bars(cells, scale)
        style = {"marker": "s", "linestyle": "none", "color": "black"} if method == "kivi" else {"marker": "o"}
        ax.errorbar(xs, ys, yerr=err, capsize=3, label=method, alpha=0.85, **style)
    base = _cell(result.rows[0], column)
    if base is not None:
        ax.errorbar(
            [100.0],
            [scale * base.value],
            yerr=_bars([base], scale),
            marker="*",
            markersize=14,
            color="gold",
            markeredgecolor="black",
            capsize=3,
            linestyle="none",
            label="baseline",
            zorder=5,
        )
    ax.set_xlabel("KV cache bytes kept for the context (% of uncompressed; KIVI: codes + scales + zeros)")
    ax.set_ylabel(ylabel)
    n = len({(o.task, o.sample) for o in result.outcomes if (o.correct is not None) == is_acc})  # the plotted ones
    kind = "QA samples" if is_acc else "texts"
    ax.set_title(
        f"{result.model.get('name')}: {n} {kind}, 95 % intervals ({'Wilson' if is_acc else 'bootstrap'})", fontsize=9
    )
    ax.invert_xaxis()
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # never over a point
    ax.grid(alpha=0.3)
    return fig
