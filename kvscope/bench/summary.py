"""Aggregate outcomes into the bench table: per configuration, accuracy per task with a Wilson 95 %
interval, mean perplexity ratio on text with a bootstrap 95 % interval, KV bytes kept and seconds.

Ranking: in each column the best compressed configuration (``baseline`` is the reference, not a
contender) is marked ``best``. Every configuration is scored on the same samples as the best one, so
ties come from a paired test against it: for accuracy the exact McNemar test on the samples both
answered (``tied`` when p >= 0.05, uncorrected for the number of comparisons; ``Cell.p_value``), for
the perplexity ratio a seeded bootstrap 95 % interval of the mean per-sample difference (``tied``
when it contains 0). Tied configurations are not ranked against each other.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kvscope.bench.sample_runner import Outcome
from kvscope.stats import bootstrap_ci, mcnemar_exact, wilson

POOLED = "all_qa"  # the pooled accuracy over every QA sample
ALPHA = 0.05  # a configuration whose paired test against the best gives p >= ALPHA is tied with it
TIES = (
    "best = best compressed configuration in its column; tied = not different from it on the same samples: "
    "exact McNemar test p >= 0.05 (accuracy), bootstrap 95 % interval of the paired mean difference "
    "containing 0 (perplexity ratio)"
)


@dataclass
class Cell:
    """One table cell: ``value`` (accuracy or mean ppl ratio), its 95 % interval, the sample count and
    ``mark`` (``best``, ``tied`` or ``""``); ``p_value``: the exact McNemar test against the column's
    best configuration (accuracy cells of compressed configurations other than the best)."""

    value: float
    low: float
    high: float
    n: int
    correct: int | None = None
    mark: str = ""
    p_value: float | None = None

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
    mark_ties(rows, outcomes, seed)
    return rows


def _task_order(outcomes: list[Outcome]):
    first = {}
    for i, o in enumerate(outcomes):
        first.setdefault(o.task, i)
    return lambda t: first[t]


def mark_ties(rows: list[Row], outcomes: list[Outcome], seed: int = 0) -> None:
    """Mark the best compressed configuration per column and those a paired test cannot tell from it."""
    contenders = [r for r in rows if r.method != "baseline"]
    answers = {r.config: _paired(outcomes, r.config, "correct") for r in contenders}
    for col in {c for r in contenders for c in r.accuracy}:
        cells = [(r, r.accuracy[col]) for r in contenders if col in r.accuracy and r.accuracy[col].n]
        best = _best(cells, higher=True)
        for r, cell in cells if best else []:
            if r is not best:
                mine, theirs = _column(answers[r.config], col), _column(answers[best.config], col)
                both = mine.keys() & theirs.keys()
                cell.p_value = mcnemar_exact(
                    sum(mine[k] and not theirs[k] for k in both), sum(theirs[k] and not mine[k] for k in both)
                )
                cell.mark = "tied" if cell.p_value >= ALPHA else ""
    cells = [(r, r.ppl_ratio) for r in contenders if r.ppl_ratio is not None and r.ppl_ratio.n]
    best = _best(cells, higher=False)
    for r, cell in cells if best else []:
        if r is not best:
            mine, theirs = _paired(outcomes, r.config, "ppl_ratio"), _paired(outcomes, best.config, "ppl_ratio")
            _, low, high = bootstrap_ci([mine[k] - theirs[k] for k in mine.keys() & theirs.keys()], seed=seed)
            cell.mark = "tied" if low <= 0 <= high else ""


def _paired(outcomes: list[Outcome], config: str, field_name: str) -> dict[tuple[str, int], Any]:
    """``{(task, sample): value}`` of one configuration's outcomes that have ``field_name``."""
    return {
        (o.task, o.sample): getattr(o, field_name)
        for o in outcomes
        if o.config == config and getattr(o, field_name) is not None
    }


def _column(values: dict[tuple[str, int], Any], col: str) -> dict[tuple[str, int], Any]:
    return values if col == POOLED else {k: v for k, v in values.items() if k[0] == col}


def _best(cells: list[tuple[Row, Cell]], higher: bool) -> Row | None:
    """The row whose cell has the best value (the first one on equal values), marked ``best``."""
    cells = [(r, c) for r, c in cells if not math.isnan(c.value)]
    if not cells:
        return None
    row, cell = max(cells, key=lambda rc: rc[1].value if higher else -rc[1].value)
    cell.mark = "best"
    return row


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
