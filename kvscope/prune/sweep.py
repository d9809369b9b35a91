"""Every strategy at every ratio plus KIVI quantization, on one prefill.

The prompt is prefilled once (by the caller, ``evict.prefill``); each configuration then costs one
continuation pass against a pruned or quantized copy of that cache. ``prefill_seconds`` and
``continuation_seconds`` record where the time went.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.prune.evict import Prefill
from kvscope.prune.lab import Plan, measure, pct
from kvscope.prune.strategies import STRATEGIES, get_strategy
from kvscope.quant import parse_spec

RATIOS = (0.25, 0.5, 0.75, 0.9)
QUANT_SPECS = ("K8V8", "K4V4", "K2V2")


@dataclass
class SweepRow:
    """One configuration: ``method`` is a strategy name or ``"kivi"``; ``setting`` its ratio or spec."""

    method: str
    setting: str
    ratio: float | None
    ppl: float
    ppl_change_pct: float
    kv_bytes: int
    kv_fraction: float
    seconds: float


@dataclass
class SweepResult:
    """Rows (baseline first), the prefill time and the summed continuation-pass time, in seconds."""

    model: str
    baseline_ppl: float
    baseline_bytes: int
    rows: list[SweepRow]
    prompt_tokens: int
    scored_tokens: int
    prefill_seconds: float
    continuation_seconds: float
    prefills: int = 1
    torch_threads: int = field(default_factory=torch.get_num_threads)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["rows"] = [r.__dict__ for r in self.rows]
        return d


def _row(model: Any, pre: Prefill, cont_ids: torch.Tensor, plan: Plan, method: str, setting: str,
         ratio: float | None, base: tuple[float, int] | None) -> SweepRow:
    t0 = time.perf_counter()
    m = measure(model, pre, cont_ids, plan)
    seconds = time.perf_counter() - t0
    ppl0, bytes0 = base or (m.ppl, m.kv_bytes)
    return SweepRow(method, setting, ratio, m.ppl, pct(m.ppl, ppl0), m.kv_bytes, m.kv_bytes / bytes0, seconds)


def sweep(model: Any, model_name: str, pre: Prefill, cont_ids: torch.Tensor, ratios=RATIOS,
          strategies=None, quant_specs=QUANT_SPECS) -> SweepResult:
    """Baseline, then each strategy x ratio, then each KIVI spec, all against ``pre``'s cache."""
    base = _row(model, pre, cont_ids, Plan("baseline"), "baseline", "none", 0.0, None)
    rows = [base]
    ref = (base.ppl, base.kv_bytes)
    for name in strategies or list(STRATEGIES):
        strategy = get_strategy(name)
        for r in ratios:
            plan = Plan(f"{name} {r:g}", strategy.keep(pre, r))
            rows.append(_row(model, pre, cont_ids, plan, name, f"{r:g}", r, ref))
    for spec in quant_specs:
        q = parse_spec(spec)
        rows.append(_row(model, pre, cont_ids, Plan(q.label, quant=q), "kivi", q.label, None, ref))
    return SweepResult(model_name, base.ppl, base.kv_bytes, rows, pre.n_positions, int(cont_ids.shape[1]) - 1,
                       pre.seconds, sum(r.seconds for r in rows))


def to_csv(result: SweepResult) -> str:
    """The rows as CSV text (header first)."""
    cols = ["method", "setting", "ratio", "ppl", "ppl_change_pct", "kv_bytes", "kv_fraction", "seconds"]
    lines = [",".join(cols)]
    for r in result.rows:
        lines.append(",".join("" if getattr(r, c) is None else str(getattr(r, c)) for c in cols))
    return "\n".join(lines) + "\n"
