"""The one registry of analyses. An analysis is one entry: how to compute it, what it needs, its figures
(file names, drawing for one prompt and for many, title, explanation), its entry in ``metrics.json`` and
its aggregation over prompts. The report, ``metrics.json``, the many-prompt path and the CLI read
``ANALYSES`` and ``FIGURES``; every count comes from them.

The built-in analyses are the modules of ``kvscope.analyze.entries``, each calling :func:`register` once;
they are found by listing that package, so a new analysis is one module there plus its test. ``run_all``
runs the analyses in ``place`` order; an analysis whose needs are not met (no attention, no queries, no
model) is skipped with a note, never failing the run. Later analyses can read earlier results
(``ctx.results``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kvscope.analyze.layer_stats import DEFAULT_SPARSITY_THRESHOLD
from kvscope.analyze.sinks import DEFAULT_SINK_SHARE
from kvscope.errors import KvscopeError
from kvscope.snapshot import KVSnapshot

SINGLE_ONLY = "drawn for one prompt only; run with --prompt (or analyze one snapshot) to see it"
LAST = 1_000_000.0  # the place of an entry that does not give one: after every built-in


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


def plain(result: Any) -> Any:
    """A result's entry in ``metrics.json``: a dataclass's fields by name (``fileio.write_json`` converts arrays)."""
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return result


def lazy(target: str) -> Callable[..., Any]:
    """``"module:function"`` as a callable that imports the module on its first call (figure code pulls in
    Matplotlib, which a registry lookup should not)."""
    module, name = target.split(":")

    def call(*args: Any, **kw: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kw)

    call.__qualname__ = call.__name__ = name
    return call


@dataclass(frozen=True)
class Figure:
    """One figure. ``files``: names without suffix (the first is its name; the same image may be written
    under several); ``draw(FigureData) -> matplotlib Figure``; ``draw_many``: the view over many prompts
    (None: ``many_skip`` says why there is none); ``needs``: the analyses it reads (its own is added by
    :func:`register`); ``place``: its rank in the report and in ``metrics.json``; ``palette``: a PNG of
    256 colours (for heatmaps drawn with at most ~200 colours)."""

    files: tuple[str, ...]
    draw: Callable[[Any], Any]
    title: str
    explanation: str
    place: float = LAST
    needs: tuple[str, ...] = ()
    draw_many: Callable[[Any], Any] | None = None
    palette: bool = False
    many_skip: str = SINGLE_ONLY

    @property
    def name(self) -> str:
        return self.files[0]


@dataclass(frozen=True)
class Analysis:
    """One analysis. ``compute(ctx) -> result`` (a dataclass, no I/O); ``needs``: any of ``attention``,
    ``queries``, ``model``; ``place``: the run order; ``to_metrics(result)``: its ``metrics.json`` entry;
    ``aggregate([result per prompt]) -> {key: value}``: what it adds to ``ManyPrompts`` and to the
    ``aggregate`` of a many-prompt ``metrics.json`` (None: a many-prompt run does not compute it)."""

    name: str
    compute: Callable[[Context], Any]
    place: float = LAST
    needs: tuple[str, ...] = ()
    figures: tuple[Figure, ...] = ()
    to_metrics: Callable[[Any], Any] = plain
    aggregate: Callable[[list[Any]], dict[str, Any]] | None = None


ANALYSES: dict[str, Analysis] = {}
FIGURES: dict[str, Figure] = {}


def register(analysis: Analysis) -> Analysis:
    """Add ``analysis`` (replacing one of the same name) and its figures; returns it."""
    taken = {f for a in ANALYSES.values() if a.name != analysis.name for fig in a.figures for f in fig.files}
    clash = taken.intersection(f for fig in analysis.figures for f in fig.files)
    if clash:
        raise ValueError(f"analysis {analysis.name!r}: figure file(s) {sorted(clash)} already registered")
    figures = tuple(dataclasses.replace(f, needs=(analysis.name, *f.needs)) for f in analysis.figures)
    ANALYSES[analysis.name] = dataclasses.replace(analysis, figures=figures)
    _reorder()
    return ANALYSES[analysis.name]


def unregister(name: str) -> None:
    """Remove the analysis ``name`` and its figures (tests register their own and take them off again)."""
    ANALYSES.pop(name, None)
    _reorder()


def _reorder() -> None:
    """``ANALYSES`` in ``place`` order, ``FIGURES`` in theirs; the dicts are updated in place, so a module
    that imported them sees every registration."""
    analyses = sorted(ANALYSES.values(), key=lambda a: a.place)
    ANALYSES.clear()
    ANALYSES.update((a.name, a) for a in analyses)
    figures = sorted((f for a in analyses for f in a.figures), key=lambda f: f.place)
    FIGURES.clear()
    FIGURES.update((f.name, f) for f in figures)


def many_analyses() -> list[str]:
    """The analyses a many-prompt run computes on every prompt: those with an aggregation."""
    return [name for name, a in ANALYSES.items() if a.aggregate is not None]


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
    for name, analysis in list(ANALYSES.items()):
        if only is not None and name not in only:
            continue
        why = _missing(ctx, analysis.needs)
        if why:
            ctx.notes[name] = f"skipped: {why}"
            continue
        try:
            ctx.results[name] = analysis.compute(ctx)
        except KvscopeError as exc:
            ctx.notes[name] = f"skipped: {exc}"
    return ctx


def _load_builtin() -> None:
    """Import every module of ``kvscope.analyze.entries``; each registers its analysis."""
    entries = importlib.import_module("kvscope.analyze.entries")
    for module in pkgutil.iter_modules(entries.__path__):
        importlib.import_module(f"{entries.__name__}.{module.name}")


_load_builtin()
