"""The ``kvscope analyze`` pipeline, independent of the CLI: analyses -> (scan) -> figures ->
``metrics.json`` and ``report.html``, each step timed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kvscope.analyses.registry import AnalysisOptions, run_all
from kvscope.errors import UsageError
from kvscope.fileio import write_json, write_text
from kvscope.snapshot import KVSnapshot

GROUND_TRUTH_FILE = "importance_ground_truth.json"


@dataclass
class AnalyzeRun:
    """What one run produced: paths written, the metrics document, and per-step seconds."""

    out: Path
    metrics: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)


def load_ground_truth(path: Path | None, snapshot: KVSnapshot) -> tuple[np.ndarray | None, str]:
    """``delta_loglik`` from a leave-one-out file if it matches the snapshot's tokens, else a note."""
    if path is None or not path.is_file():
        return None, ""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        delta = np.asarray(doc["delta_loglik"], dtype=np.float64)
        ids = [int(i) for i in doc.get("token_ids", [])]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read ground truth {path}: {exc}") from None
    if ids and ids != snapshot.token_ids.tolist():
        return None, f"{path.name} was measured on a different prompt ({len(ids)} tokens); not compared"
    return delta, f"ground truth from {path.name}"


def token_data(results: dict[str, Any]) -> dict[str, Any]:
    t = results["tokens"]
    return {"tokens": t.tokens, "types": t.types, "key_norm": t.key_norm, "value_norm": t.value_norm,
            "magnitude": t.magnitude, "attention": t.attention, "sink": t.sink}


def analyze_snapshot(snapshot: KVSnapshot, out: Path, options: AnalysisOptions, *, model: Any = None,
                     fmt: str = "png", jobs: int = 1, scan: dict[str, Any] | None = None,
                     timing: dict[str, float] | None = None, extra_notes: dict[str, str] | None = None,
                     run_options: dict[str, Any] | None = None) -> AnalyzeRun:
    """Run every analysis on ``snapshot``, draw every figure into ``out``, write metrics and report."""
    from kvscope.plots.analyze import FIGURES, FigureData, render_all
    from kvscope.report.html import build_report
    from kvscope.report.metrics import build_metrics

    timing = dict(timing or {})
    t0 = time.perf_counter()
    ctx = run_all(snapshot, options, model=model)
    timing["analysis"] = time.perf_counter() - t0
    notes = {**ctx.notes, **(extra_notes or {})}
    meta = {"model": snapshot.info.name, "layers": snapshot.n_layers, "layer": options.layer,
            "n_positions": snapshot.n_positions}
    scan_arrays = {k: scan[k] for k in ("layers", "heads") if scan and k in scan}
    t0 = time.perf_counter()
    figures = render_all(FigureData(ctx.results, meta, scan_arrays), out, fmt, notes, jobs)
    timing["plotting"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = build_metrics(snapshot, ctx.results, notes, figures, run_options or {}, timing, scan)
    write_json(out / "metrics.json", metrics)
    if "tokens" in ctx.results:
        write_text(out / "report.html", build_report(metrics, token_data(ctx.results), FIGURES))
    timing["report"] = time.perf_counter() - t0
    metrics["timing_s"] = timing
    write_json(out / "metrics.json", metrics)
    return AnalyzeRun(out, metrics, timing)
