"""Files of a bench run, written into one folder atomically (``BenchResult.save``, ``kvscope.kit.results``):
``bench.json`` (the table, settings, model, seed, version, cost), ``samples.jsonl`` (one line per
sample x configuration), ``bench_pareto.png`` and a self-contained ``report.html``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kvscope.bench.summary import TIES
from kvscope.fileio import to_jsonable

TIMING_KEYS = ("seconds", "prefill_seconds")  # differ between runs; every other number is reproducible


def row_dict(row: Any) -> dict[str, Any]:
    d = asdict(row)
    d["accuracy"] = {k: asdict(v) for k, v in row.accuracy.items()}
    return d


def to_dict(result: Any, samples: bool = False) -> dict[str, Any]:
    """bench.json's content."""
    d = {
        "kvscope_version": result.kvscope_version,
        "model": result.model,
        "settings": result.settings,
        "intervals": "95 %: Wilson score for accuracies, percentile bootstrap (2000 resamples, seeded) for "
        "the mean perplexity ratio",
        "ties": TIES,
        "rows": [row_dict(r) for r in result.rows],
        "warnings": result.warnings,
        "maps": [asdict(m) for m in result.maps],  # eviction maps, read by kvscope view (issue 25)
        "prefills": result.prefills,
        "forwards": result.forwards,
        "forwarded_tokens": result.forwarded_tokens,
        "prefill_seconds": result.prefill_seconds,
        "seconds": result.seconds,
        "processes": result.processes,
        "torch_threads": result.torch_threads,
    }
    if samples:
        d["outcomes"] = [asdict(o) for o in result.outcomes]
    return to_jsonable(d)


def samples_jsonl(result: Any) -> str:
    """One JSON line per sample x configuration."""
    return "".join(json.dumps(to_jsonable(asdict(o)), allow_nan=False) + "\n" for o in result.outcomes)


def write(result: Any, folder: Path) -> list[str]:
    """Write every file into the (temporary) ``folder``; ``result.save(out)`` swaps it in whole."""
    from kvscope.bench.bench_html import report_html
    from kvscope.kit.figures import save_figures

    (folder / "bench.json").write_text(json.dumps(to_dict(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (folder / "samples.jsonl").write_text(samples_jsonl(result), encoding="utf-8")
    figures = save_figures(result.figures(), folder)
    (folder / "report.html").write_text(report_html(result, folder / "bench_pareto.png"), encoding="utf-8")
    return ["bench.json", "samples.jsonl", *figures, "report.html"]


def row_text(row: Any) -> str:
    """A table row as one line: each accuracy and the perplexity ratio with its interval, KV kept."""
    cells = [f"acc {task} {cell.text()}" for task, cell in row.accuracy.items()]
    cells += [f"ppl ratio {row.ppl_ratio.text(False)}"] if row.ppl_ratio is not None else []
    return "; ".join([*cells, f"KV kept {100 * row.kv_fraction:.1f} %"])
