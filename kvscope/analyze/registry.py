"""Registry of analyses: name -> how to run it and what it needs. ``run_all`` runs them in order.

An analysis whose needs are not met (no attention, no queries, no model) is skipped with a note;
it never fails the run. Later analyses can read earlier results (``ctx.results``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvscope.analyze.cache_maps import cache_maps
from kvscope.analyze.distribution import value_distribution
from kvscope.analyze.head_specialization import head_specialization
from kvscope.analyze.importance import importance
from kvscope.analyze.layer_stats import DEFAULT_SPARSITY_THRESHOLD, layer_stats
from kvscope.analyze.pca import pca_by_position
from kvscope.analyze.pruning_potential import pruning_potential
from kvscope.analyze.sinks import DEFAULT_SINK_SHARE, detect_sinks
from kvscope.analyze.token_table import token_table
from kvscope.analyze.weights import projection_weights, weight_magnitudes
from kvscope.errors import KvscopeError
from kvscope.snapshot import KVSnapshot


@dataclass(frozen=True)
class AnalysisOptions:
    """``layer``: the layer for the single-layer views (PCA, head specialization)."""

    layer: int
    sparsity_threshold: float = DEFAULT_SPARSITY_THRESHOLD
    sink_share: float = DEFAULT_SINK_SHARE
    n_rank: int = 10
    delta_loglik: np.ndarray | None = None


@dataclass
class Context:
    snapshot: KVSnapshot
    options: AnalysisOptions
    model: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Analysis:
    run: Callable[[Context], Any]
    needs: tuple[str, ...] = ()


def _quantization(ctx: Context) -> Any:
    from kvscope.analyze.quantization import quantization_error

    return quantization_error(ctx.snapshot, model=ctx.model)


def _heads(ctx: Context) -> Any:
    from kvscope.analyze.attention_spec import attention_spec

    sinks = ctx.results.get("sinks")
    found = sinks.positions.tolist() if sinks is not None and sinks.detected else None
    return head_specialization(ctx.snapshot, ctx.options.layer, found, attention_spec(ctx.snapshot, ctx.model))


ANALYSES: dict[str, Analysis] = {
    "sinks": Analysis(lambda c: detect_sinks(c.snapshot, c.options.sink_share)),
    "cache_maps": Analysis(lambda c: cache_maps(c.snapshot)),
    "layer_stats": Analysis(lambda c: layer_stats(c.snapshot, c.options.sparsity_threshold)),
    "distribution": Analysis(lambda c: value_distribution(c.snapshot)),
    "pca": Analysis(lambda c: pca_by_position(c.snapshot, c.options.layer)),
    "tokens": Analysis(lambda c: token_table(c.snapshot, c.results["sinks"], c.options.n_rank)),
    "pruning": Analysis(lambda c: pruning_potential(c.snapshot)),
    "importance": Analysis(lambda c: importance(c.snapshot, c.options.delta_loglik), ("attention",)),
    "heads": Analysis(_heads, ("queries",)),
    "quantization": Analysis(_quantization),
    "weights": Analysis(lambda c: weight_magnitudes(*projection_weights(c.model)), ("model",)),
}

_NEED_NOTES = {
    "attention": "the snapshot has no attention data (capture with --attention)",
    "queries": "the snapshot has no queries (capture with --queries)",
    "model": "no model is loaded (analyzing a saved --snapshot)",
}


def _missing(ctx: Context, needs: tuple[str, ...]) -> str | None:
    have = {
        "attention": ctx.snapshot.has_attention,
        "queries": ctx.snapshot.queries is not None,
        "model": ctx.model is not None,
    }
    for need in needs:
        if not have[need]:
            return _NEED_NOTES[need]
    return None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch threads inside the block, then restore the count (None: leave it alone)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_all(
    snapshot: KVSnapshot, options: AnalysisOptions, model: Any = None, only: list[str] | None = None
) -> Context:
    """Run every registered analysis (or ``only`` those); results and skip notes in the context.

    On one torch thread: the analyses are many small tensor ops, and on a busy 2-core machine two
    OpenMP threads per op made them ~200x slower (measured: 59 s vs 0.26 s for the quantization
    analysis of a 213-token SmolLM2 capture)."""
    with torch_threads(1):
        return _run_all(snapshot, options, model, only)


def _run_all(snapshot: KVSnapshot, options: AnalysisOptions, model: Any, only: list[str] | None) -> Context:
    ctx = Context(snapshot, options, model)
    for name, analysis in ANALYSES.items():
        if only is not None and name not in only:
            continue
        why = _missing(ctx, analysis.needs)
        if why:
            ctx.notes[name] = f"skipped: {why}"
            continue
        try:
            ctx.results[name] = analysis.run(ctx)
        except KvscopeError as exc:
            ctx.notes[name] = f"skipped: {exc}"
    return ctx
