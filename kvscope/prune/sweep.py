"""Every strategy at every ratio plus KIVI quantization, on one prefill.

The prompt is prefilled once (by the caller, ``evict.prefill``); each configuration then costs one
continuation pass against a pruned or quantized copy of that cache. ``prefill_seconds`` and
``continuation_seconds`` record where the time went; ``prefills`` counts the prefill forward passes
that really ran (the caller's, plus any during the sweep: none), with a forward hook.

One text is an example, not a ranking: ``kvscope bench`` compares strategies over many samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kvscope.kit.results import ResultMixin
from kvscope.progress import track
from kvscope.prune.evict import Prefill, count_forwards
from kvscope.prune.lab import Plan, measure, pct
from kvscope.prune.strategies import STRATEGIES, Strategy, make_strategy
from kvscope.quant import KiviSpec, parse_spec

RATIOS = (0.25, 0.5, 0.75, 0.9)
QUANT_SPECS = ("K8V8", "K4V4", "K2V2")


@dataclass
class SweepRow:
    """One configuration: ``method`` is a strategy label or ``"kivi"``; ``setting`` its ratio or spec.
    ``kv_fraction``: of the baseline's bytes at the cache's dtype; ``kv_fraction_fp16``: both in float16."""

    method: str
    setting: str
    ratio: float | None
    ppl: float
    ppl_change_pct: float
    kv_bytes: int
    kv_fraction: float
    seconds: float
    kv_bytes_fp16: int = 0
    kv_fraction_fp16: float = 1.0


@dataclass(repr=False)
class SweepResult(ResultMixin):
    """Rows (baseline first), the prefill time and the summed continuation-pass time, in seconds;
    ``prefills``: prefill forward passes counted; ``warnings``: the strategies' guardrail messages."""

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
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["rows"] = [r.__dict__ for r in self.rows]
        return d

    command = "prune --sweep"

    def summary(self) -> list[tuple[str, Any]]:
        return [
            ("model", self.model),
            ("configurations", len(self.rows)),
            ("prompt_tokens", self.prompt_tokens),
            ("prefills", self.prefills),
            ("baseline_ppl", f"{self.baseline_ppl:.3f}"),
            ("note", "one text, an example, not a ranking"),
        ]

    def details(self) -> list[tuple[str, Any]]:
        from kvscope.prune.summaries import sweep_details

        return sweep_details(self)

    def notes(self) -> list[str]:
        from kvscope.prune.summaries import sweep_notes

        return sweep_notes(self)

    def figures(self) -> dict[str, Any]:
        from kvscope.prune.prune_figures import compression_pareto

        return {"compression_pareto": compression_pareto(self)}

    def write(self, folder: Path) -> list[str]:
        """``sweep.csv``, ``sweep.json`` and ``compression_pareto.png``."""
        from kvscope.fileio import write_json, write_text
        from kvscope.kit.figures import save_figures

        write_text(folder / "sweep.csv", to_csv(self))
        write_json(folder / "sweep.json", self.to_dict())
        return ["sweep.csv", "sweep.json", *save_figures(self.figures(), folder)]


def _row(
    model: Any,
    pre: Prefill,
    cont_ids: torch.Tensor,
    plan: Plan,
    method: str,
    setting: str,
    ratio: float | None,
    base: tuple[float, int, int] | None,
) -> SweepRow:
    t0 = time.perf_counter()
    m = measure(model, pre, cont_ids, plan)
    seconds = time.perf_counter() - t0
    ppl0, bytes0, fp16_0 = base or (m.ppl, m.kv_bytes, m.kv_bytes_fp16)
    return SweepRow(
        method,
        setting,
        ratio,
        m.ppl,
        pct(m.ppl, ppl0),
        m.kv_bytes,
        m.kv_bytes / bytes0,
        seconds,
        m.kv_bytes_fp16,
        m.kv_bytes_fp16 / fp16_0,
    )


def sweep(
    model: Any,
    model_name: str,
    pre: Prefill,
    cont_ids: torch.Tensor,
    ratios=RATIOS,
    strategies: list[str | Strategy] | None = None,
    quant_specs: list[str | KiviSpec] = QUANT_SPECS,
    quiet: bool = False,
) -> SweepResult:
    """Baseline, then each strategy x ratio, then each KIVI spec, all against ``pre``'s cache.

    ``strategies``: registered names or strategies made with ``make_strategy`` (default: every one).
    """
    chosen = [make_strategy(s) if isinstance(s, str) else s for s in (strategies or list(STRATEGIES))]
    specs = [parse_spec(q) if isinstance(q, str) else q for q in quant_specs]
    configs = [(s, r) for s in chosen for r in ratios] + [(q, None) for q in specs]
    with count_forwards(model) as count:
        base = _row(model, pre, cont_ids, Plan("baseline"), "baseline", "none", 0.0, None)
        rows, ref = [base], (base.ppl, base.kv_bytes, base.kv_bytes_fp16)
        for what, r in track(configs, "sweep: configurations", quiet=quiet):
            if isinstance(what, KiviSpec):
                rows.append(_row(model, pre, cont_ids, Plan(what.label, quant=what), "kivi", what.label, None, ref))
            else:
                plan = Plan(f"{what.label} {r:g}", what.keep(pre, r))
                rows.append(_row(model, pre, cont_ids, plan, what.label, f"{r:g}", r, ref))
    layers = len(pre.keys)
    warnings = [w for s in chosen for r in ratios for w in s.warnings(pre.n_positions, r, layers=layers)]
    return SweepResult(
        model_name,
        base.ppl,
        base.kv_bytes,
        rows,
        pre.n_positions,
        int(cont_ids.shape[1]) - 1,
        pre.seconds,
        sum(r.seconds for r in rows),
        pre.forward_passes + count.prefills,
        warnings=warnings,
    )


def to_csv(result: SweepResult) -> str:
    """The rows as CSV text (header first)."""
    cols = [
        "method",
        "setting",
        "ratio",
        "ppl",
        "ppl_change_pct",
        "kv_bytes",
        "kv_fraction",
        "seconds",
        "kv_bytes_fp16",
        "kv_fraction_fp16",
    ]
    lines = [",".join(cols)]
    for r in result.rows:
        lines.append(",".join("" if getattr(r, c) is None else str(getattr(r, c)) for c in cols))
    return "\n".join(lines) + "\n"
