"""Aggregate outcomes into the bench table: per configuration, accuracy per task with a Wilson 95 %
interval, mean perplexity ratio on text with a bootstrap 95 % interval, KV bytes kept and seconds.

Ranking: in each column the best compressed configuration (``baseline`` is the reference, not a
contender) is marked ``best`` and every configuration whose interval overlaps the best one's is
marked ``tied``: those are not ranked against each other.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kvscope.bench.sample_runner import Outcome
from kvscope.stats import bootstrap_ci, overlaps, wilson

POOLED = "all_qa"  # the pooled accuracy over every QA sample


@dataclass
class Cell:
    """One table cell: ``value`` (accuracy or mean ppl ratio), its 95 % interval, the sample count and
    ``mark`` (``best``, ``tied`` or ``""``)."""

    value: float
    low: float
    high: float
    n: int
    correct: int | None = None
    mark: str = ""

    def text(self, pct: bool = True) -> str:
        if self.n == 0 or math.isnan(self.value):
            return "-"
        f = (lambda v: f"{100 * v:.0f}") if pct else (lambda v: f"{v:.3f}")
        tag = {"best": " *", "tied": " ~"}.get(self.mark, "")
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]{tag}"


@dataclass
class Row:
    """One configuration's row of the table."""

    config: str
    method: str
    ratio: float | None
    accuracy: dict[str, Cell] = field(default_factory=dict)
    ppl_ratio: Cell | None = None
    kv_bytes: float = 0.0
    kv_fraction: float = 1.0
    seconds: float = 0.0


def accuracy_cell(outs: list[Outcome]) -> Cell:
    k, n = sum(bool(o.correct) for o in outs), len(outs)
    lo, hi = wilson(k, n)
    return Cell(k / n if n else math.nan, lo, hi, n, k)


def ppl_cell(outs: list[Outcome], seed: int) -> Cell:
    vals = [o.ppl_ratio for o in outs if o.ppl_ratio is not None]
    _, lo, hi = bootstrap_ci(vals, seed=seed)
    return Cell(sum(vals) / len(vals) if vals else math.nan, lo, hi, len(vals))


def summarize_outcomes(outcomes: list[Outcome], configs: list[Any], seed: int = 0) -> list[Row]:
    """The table rows, one per configuration in ``configs`` order."""
    qa_tasks = sorted({o.task for o in outcomes if o.correct is not None}, key=_task_order(outcomes))
    rows = []
    for cfg in configs:
        mine = [o for o in outcomes if o.config == cfg.name]
        row = Row(cfg.name, cfg.method, cfg.ratio)
        for task in qa_tasks:
            row.accuracy[task] = accuracy_cell([o for o in mine if o.task == task and o.correct is not None])
        if len(qa_tasks) > 1:
            row.accuracy[POOLED] = accuracy_cell([o for o in mine if o.correct is not None])
        if any(o.ppl is not None for o in mine):
            row.ppl_ratio = ppl_cell([o for o in mine if o.ppl is not None], seed)
        if mine:
            row.kv_bytes = sum(o.kv_bytes for o in mine) / len(mine)
            row.kv_fraction = sum(o.kv_fraction for o in mine) / len(mine)
            row.seconds = sum(o.seconds for o in mine)
        rows.append(row)
    mark_ties(rows)
    return rows


def _task_order(outcomes: list[Outcome]):
    first = {}
    for i, o in enumerate(outcomes):
        first.setdefault(o.task, i)
    return lambda t: first[t]


def mark_ties(rows: list[Row]) -> None:
    """Mark the best compressed configuration per column and those whose intervals overlap it."""
    contenders = [r for r in rows if r.method != "baseline"]
    columns = {c for r in contenders for c in r.accuracy}
    for col in columns:
        cells = [r.accuracy[col] for r in contenders if col in r.accuracy and r.accuracy[col].n]
        _mark(cells, higher=True)
    _mark([r.ppl_ratio for r in contenders if r.ppl_ratio is not None and r.ppl_ratio.n], higher=False)


def _mark(cells: list[Cell], higher: bool) -> None:
    cells = [c for c in cells if not math.isnan(c.value)]
    if not cells:
        return
    best = max(cells, key=lambda c: c.value if higher else -c.value)
    for c in cells:
        c.mark = "best" if c is best else ("tied" if overlaps((c.low, c.high), (best.low, best.high)) else "")


def guardrails(rows: list[Row], outcomes: list[Outcome], sample_warnings: list[str]) -> list[str]:
    """Warnings: baseline accuracy under 50 % on a task, perplexity samples with fewer than 50 scored
    tokens, and the per-sample warnings (e.g. a budget below a strategy's window), counted."""
    out = []
    base = next((r for r in rows if r.method == "baseline"), None)
    for task, cell in base.accuracy.items() if base else []:
        if task != "all_qa" and cell.n and cell.value < 0.5:
            out.append(
                f"baseline accuracy on {task} is {100 * cell.value:.0f} % (under 50 %): the task is too hard "
                "for this model at this length, so its column tells little about compression"
            )
    short = sorted(
        {o.sample for o in outcomes if o.config == "baseline" and o.scored_tokens is not None and o.scored_tokens < 50}
    )
    if short:
        out.append(f"text samples {short} score fewer than 50 tokens: their perplexity is noisy")
    for msg, n in Counter(sample_warnings).items():
        out.append(f"{msg} ({n} sample{'s' if n != 1 else ''})")
    return out
