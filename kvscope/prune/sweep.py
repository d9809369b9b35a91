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
from kvscope.prune.engine import SWEEP, Config, build_grid
from kvscope.prune.evict import Prefill, count_forwards
from kvscope.prune.lab import Plan, measure, pct
from kvscope.prune.strategies import Strategy
from kvscope.quant import KiviSpec


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


def _row(model: Any, pre: Prefill, cont_ids: torch.Tensor, cfg: Config, base: SweepRow | None) -> SweepRow:
    """One configuration's row: ``method`` the strategy's label (settings included), ``kivi`` or ``baseline``."""
    t0 = time.perf_counter()
    m = measure(model, pre, cont_ids, Plan(cfg.label, cfg.keep(pre), cfg.quant))
    seconds = time.perf_counter() - t0
    ref = base or SweepRow("", "", None, m.ppl, 0.0, m.kv_bytes, 1.0, 0.0, m.kv_bytes_fp16)
    if cfg.strategy is not None:
        method, setting, ratio = cfg.strategy.label, f"{cfg.ratio:g}", cfg.ratio
    else:
        method, setting, ratio = cfg.method, (cfg.quant.label if cfg.quant else "none"), (None if cfg.quant else 0.0)
    return SweepRow(
        method,
        setting,
        ratio,
        m.ppl,
        pct(m.ppl, ref.ppl),
        m.kv_bytes,
        m.kv_bytes / ref.kv_bytes,
        seconds,
        m.kv_bytes_fp16,
        m.kv_bytes_fp16 / ref.kv_bytes_fp16,
    )


def sweep(
    model: Any,
    model_name: str,
    pre: Prefill,
    cont_ids: torch.Tensor,
    ratios=SWEEP.ratios,
    strategies: list[str | Strategy] | None = None,
    quant_specs: list[str | KiviSpec] = SWEEP.quantize,
    quiet: bool = False,
) -> SweepResult:
    """Baseline, then each strategy x ratio, then each KIVI spec (the engine's grid,
    ``kvscope.prune.engine.build_grid``), all against ``pre``'s cache.

    ``strategies``: registered names or strategies made with ``make_strategy`` (default: every one).
    """
    configs = build_grid(strategies, ratios, quant_specs).configs
    with count_forwards(model) as count:
        base = _row(model, pre, cont_ids, configs[0], None)
        rest = track(configs[1:], "sweep: configurations", quiet=quiet)
        rows = [base] + [_row(model, pre, cont_ids, c, base) for c in rest]
    layers = len(pre.keys)
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
        warnings=[w for c in configs for w in c.warnings(pre.n_positions, layers)],
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
