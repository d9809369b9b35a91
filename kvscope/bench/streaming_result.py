"""``StreamingResult``: what ``kvscope.bench.streaming.bench_streaming`` returns, and its files.

``save(out)`` writes, atomically (``kvscope.fileio.atomic_dir``): ``bench.json`` (the rows, settings,
model, mean NLL curve per configuration, eviction maps, cost), ``samples.jsonl`` (one line per stream x
configuration with its per-position NLL), ``streaming_ppl.png`` (log-perplexity against position),
``streaming_map.png`` (eviction maps over time) and a self-contained ``report.html``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kvscope.fileio import to_jsonable
from kvscope.kit.results import ResultMixin

CITATION = 'Xiao et al., "Efficient Streaming Language Models with Attention Sinks", ICLR 2024, Fig. 3'
INTERVALS = (
    "95 % percentile bootstrap (2000 resamples, seeded) over streams of each stream's mean over the positions "
    "after the cache fills (prediction of position B + 1 on)"
)


@dataclass
class Run:
    """One configuration over every stream: ``nll`` ``[stream, T - 1]`` (nats); ``held`` ``[T - 1]``: the
    most kept tokens of any (stream, layer, kv_head) after the forward that fed position ``s`` (``None``
    for dense; the positions of the first forward share its value); ``map``: the eviction map of stream 0
    (``steps``: positions fed last; ``held`` ``[len(steps), T]``: share of (layer, kv_head) slots holding
    each position after that step, 0 for positions not fed yet); ``seconds``."""

    label: str
    budget: int | None
    nll: np.ndarray
    held: list[int] | None
    map: dict[str, Any] | None
    seconds: float


@dataclass
class StreamRow:
    """One configuration's line of the table. ``log_ppl`` and ``delta`` are ``(mean, low, high)`` in
    nats per token over the predictions after the cache fills (``nll[:, budget:]``; dense: all of them):
    ``log_ppl`` the configuration's, ``delta`` its paired difference to dense on the same positions;
    ``ppl_ratio`` = exp(mean delta); ``max_held``: the most tokens any (stream, layer, kv_head) held."""

    config: str
    strategy: str
    budget: int | None
    predictions: int
    log_ppl: tuple[float, float, float]
    dense_log_ppl: float
    delta: tuple[float, float, float]
    ppl_ratio: float
    max_held: int | None
    seconds: float


@dataclass(repr=False)
class StreamingResult(ResultMixin):
    """``rows`` (one per configuration, dense first), ``runs`` (per-position NLL ``[stream, T - 1]`` and
    eviction maps), ``ids`` ``[stream, T]`` (the streams' tokens), ``seconds`` in all."""

    model: dict[str, Any]
    settings: dict[str, Any]
    table: list[StreamRow]
    runs: list[Run]
    ids: torch.Tensor
    seconds: float
    kvscope_version: str
    torch_threads: int = field(default_factory=torch.get_num_threads)
    intervals: str = INTERVALS
    citation: str = CITATION

    def row(self, config: str) -> StreamRow:
        return next(r for r in self.table if r.config == config)

    def run(self, config: str) -> Run:
        return self.runs[[r.config for r in self.table].index(config)]

    command = "bench"  # the folder's owner in its marker (kvscope.outdir): the bench command's files

    def summary(self) -> list[tuple[str, Any]]:
        s = self.settings
        worst = max(self.table[1:], key=lambda r: r.delta[0], default=None)
        out = [
            ("model", self.model.get("name")),
            ("streams", f"{s['samples']} x {s['context_tokens']} tokens"),
            ("budgets", ",".join(map(str, s["budgets"]))),
            ("dense log-ppl", f"{self.table[0].log_ppl[0]:.3f}"),
        ]
        if worst is not None:
            out.append(("worst", f"{worst.config} +{worst.delta[0]:.3f} nats"))
        return out

    def to_dict(self, curves: bool = True) -> dict[str, Any]:
        """bench.json's content (``curves``: the mean NLL per position of each configuration)."""
        d = {
            "kvscope_version": self.kvscope_version,
            "task": "streaming",
            "reproduces": self.citation,
            "model": self.model,
            "settings": self.settings,
            "intervals": self.intervals,
            "rows": [asdict(r) for r in self.table],
            "maps": [_map_dict(self.table[i].config, run) for i, run in enumerate(self.runs) if run.map],
            "seconds": self.seconds,
            "torch_threads": self.torch_threads,
        }
        if curves:
            d["curves"] = {r.config: np.round(run.nll.mean(0), 5).tolist() for r, run in zip(self.table, self.runs)}
        return to_jsonable(d)

    def samples_jsonl(self) -> str:
        """One JSON line per stream x configuration: its per-position NLL (nats, position 1 on)."""
        lines = []
        for r, run in zip(self.table, self.runs):
            for stream, nll in enumerate(run.nll):
                item = {"config": r.config, "stream": stream, "nll": np.round(nll, 5).tolist()}
                lines.append(json.dumps(to_jsonable(item), allow_nan=False) + "\n")
        return "".join(lines)

    def figures(self) -> dict[str, Any]:
        from kvscope.bench.streaming_figures import eviction_maps, log_ppl_figure
        from kvscope.kit.figures import shown

        figs = {"streaming_ppl": log_ppl_figure(self)}
        if any(run.map for run in self.runs):
            figs["streaming_map"] = eviction_maps(self)
        return shown(figs)

    def write(self, folder: Path) -> list[str]:
        """Write the files the module docstring lists into the (temporary, empty) ``folder``; returns their
        names (``save(dir)``, from the kit, swaps them in atomically)."""
        from kvscope.bench.streaming_figures import report_html
        from kvscope.kit.figures import save_figure

        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        (folder / "bench.json").write_text(text, encoding="utf-8")
        (folder / "samples.jsonl").write_text(self.samples_jsonl(), encoding="utf-8")
        paths = {name: save_figure(fig, folder / f"{name}.png") for name, fig in self.figures().items()}
        (folder / "report.html").write_text(report_html(self, paths), encoding="utf-8")
        return ["bench.json", "samples.jsonl", *(p.name for p in paths.values()), "report.html"]


def _map_dict(config: str, run: Run) -> dict[str, Any]:
    """An eviction map for bench.json: per recorded step, the share of (layer, kv_head) slots of stream 0
    holding each position (3 decimals; positions after the step are 0)."""
    return {
        "config": config,
        "stream": 0,
        "steps": run.map["steps"],
        "held": np.round(run.map["held"].astype(np.float64), 3).tolist(),
    }
