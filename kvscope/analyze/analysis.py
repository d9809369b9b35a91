"""``kvscope.analyze``: every analysis and figure of one snapshot (or many), in memory.

>>> import kvscope as ks                                            # doctest: +SKIP
>>> result = ks.analyze(snap)              # AnalyzeResult: .figures, .metrics, .verdict
>>> result.save("out/")                    # the files ``kvscope analyze`` writes, byte for byte (their paths)

Many prompts (a list of snapshots, or texts with :func:`analyze_texts`) give the figures that aggregate
over prompts, with 95 % bootstrap intervals; one prompt keeps the full single-prompt set.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kvscope.analyze.pipeline import (
    GROUND_TRUTH_FILE,
    ground_truth_note,
    load_ground_truth,
    many_ground_truth,
    token_data,
)
from kvscope.analyze.registry import AnalysisOptions, many_analyses, run_all
from kvscope.configcheck import check_layer
from kvscope.errors import UsageError
from kvscope.kit.results import FigureDict, ResultMixin
from kvscope.snapshot import KVSnapshot

CACHE_SCALES = ("layer", "shared")
CACHE_NORMS = ("auto", "clip", "log")
FORMATS = ("png", "svg")


@dataclass(repr=False)
class AnalyzeResult(ResultMixin):
    """What :func:`analyze` found. ``figures``: name -> ``matplotlib.figure.Figure``; ``metrics``: the
    ``metrics.json`` document; ``verdict``: the importance verdict (names its reference); ``results``:
    the analysis dataclasses by name (the first prompt's when there are many); ``timing``: seconds."""

    metrics: dict[str, Any]
    verdict: str
    figures: dict[str, Any] = field()  # a FigureDict: also callable, as the contract's figures()
    results: dict[str, Any]
    fmt: str = "png"
    timing: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, Any] | None = None
    ground_truth_file: bytes | None = None

    command = "analyze"

    def __post_init__(self) -> None:
        from kvscope.kit.figures import shown

        self.figures = FigureDict(shown(self.figures))

    def to_dict(self) -> dict[str, Any]:
        return self.metrics

    def write(self, out: Path) -> list[str]:
        """Every figure (under each of its file stems), ``metrics.json``, ``report.html`` (one prompt) and
        the ground-truth file the verdict rests on, when it came from a file."""
        from kvscope.analyze.analyze_html import build_report, data_uri
        from kvscope.analyze.figure_registry import FIGURES, encode
        from kvscope.fileio import write_bytes, write_json, write_text

        images, names = {}, []
        for name, fig in self.figures.items():
            payload = encode(fig, self.fmt, FIGURES[name].palette)
            for stem in FIGURES[name].files:
                names.append(write_bytes(out / f"{stem}.{self.fmt}", payload).name)
            images[name] = data_uri(payload, self.fmt)
        names.append(write_json(out / "metrics.json", self.metrics).name)
        if self.tokens is not None:
            names.append(write_text(out / "report.html", build_report(self.metrics, self.tokens, FIGURES, images)).name)
        if self.ground_truth_file is not None:
            names.append(write_bytes(out / GROUND_TRUTH_FILE, self.ground_truth_file).name)
        return names

    def summary(self) -> list[tuple[str, Any]]:
        p = self.metrics["prompt"]
        size = ("prompts", p["prompts"]) if "prompts" in p else ("tokens", p["tokens"])
        verdict = self.verdict if len(self.verdict) <= 80 else self.verdict[:77] + "..."
        return [("model", self.metrics["model"]["name"]), size, ("figures", len(self.figures)), ("verdict", verdict)]

    def details(self) -> list[tuple[str, Any]]:
        return [("verdict", self.verdict), *((k, v) for k, v in self.metrics["headline"].items() if k != "verdict")]


def _check(layer: int | None, n_layers: int, cache_scale: str, cache_norm: str, fmt: str) -> int:
    if cache_scale not in CACHE_SCALES:
        raise UsageError(f"unknown cache_scale {cache_scale!r}: use one of {', '.join(CACHE_SCALES)}")
    if cache_norm not in CACHE_NORMS:
        raise UsageError(f"unknown cache_norm {cache_norm!r}: use one of {', '.join(CACHE_NORMS)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: use png or svg")
    return check_layer(layer, n_layers)


def _ground_truth(ground_truth: Any, snap: KVSnapshot) -> tuple[np.ndarray | None, str, bytes | None]:
    if ground_truth is None:
        return None, "", None
    if isinstance(ground_truth, (str, Path)):
        path = Path(ground_truth)
        if not path.is_file():
            raise UsageError(f"cannot read ground truth {path}: no such file")
        delta, note = load_ground_truth(path, snap)
        return delta, note, path.read_bytes() if delta is not None else None
    return np.asarray(ground_truth, dtype=np.float64), "ground truth given as an array", None


def analyze(
    snapshot: KVSnapshot | list[KVSnapshot],
    *,
    model: Any = None,
    tokenizer: Any = None,
    layer: int | None = None,
    sparsity_threshold: float = 1e-5,
    sink_share: float = 0.2,
    ground_truth: Any = None,
    scan_layers: bool = False,
    scan_heads: bool = False,
    continuation: str | None = None,
    cache_scale: str = "layer",
    cache_norm: str = "auto",
    fmt: str = "png",
    quiet: bool = True,
) -> AnalyzeResult:
    """Analyze one snapshot (every figure) or a list of them (figures aggregated over prompts).

    ``model`` (optional) adds what needs it: the projection weights, the model's own attention scale,
    the next-token KL of quantization, and with ``tokenizer`` + ``continuation`` the layer/head scan.
    ``ground_truth``: ``delta_loglik`` ``[position]`` or the path of ``kvscope prune --leave-one-out``'s
    JSON; the verdict then rests on it. Nothing is written; call ``.save(dir)`` for files."""
    from kvscope.errors import expect

    for s in snapshot if isinstance(snapshot, (list, tuple)) else [snapshot]:
        expect(s, KVSnapshot, "snapshot", "a KVSnapshot or a list of them (load a saved one: ks.KVSnapshot.load(path))")
        s.check_finite("snapshot")
    if isinstance(snapshot, (list, tuple)):
        if len(snapshot) == 1:
            snapshot = snapshot[0]
        else:
            _check_one_prompt_only(scan_layers, scan_heads, continuation, cache_scale, cache_norm)
            return analyze_many(
                iter(snapshot),
                model=model,
                layer=layer,
                sparsity_threshold=sparsity_threshold,
                sink_share=sink_share,
                ground_truth=ground_truth,
                fmt=fmt,
                quiet=quiet,
                total=len(snapshot),
            )
    t0 = time.perf_counter()
    layer = _check(layer, snapshot.n_layers, cache_scale, cache_norm, fmt)
    truth, truth_note, truth_bytes = _ground_truth(ground_truth, snapshot)
    options = AnalysisOptions(
        layer=layer, sparsity_threshold=sparsity_threshold, sink_share=sink_share, delta_loglik=truth
    )
    ctx = run_all(snapshot, options, model=model)
    timing = {"analysis": time.perf_counter() - t0}
    notes = dict(ctx.notes)
    if truth_note and truth is None:
        notes["ground_truth"] = truth_note
    scan = _scan(snapshot, model, tokenizer, ctx.results, scan_layers, scan_heads, continuation, notes, timing)
    return _finish(
        snapshot,
        ctx.results,
        notes,
        scan,
        timing,
        truth_bytes,
        fmt,
        {
            "layer": layer,
            "sparsity_threshold": sparsity_threshold,
            "sink_share": sink_share,
            "format": fmt,
            "cache_scale": cache_scale,
            "cache_norm": cache_norm,
            "ground_truth": truth_note or None,
        },
    )


def _check_one_prompt_only(scan_layers, scan_heads, continuation, cache_scale, cache_norm) -> None:
    """A one-line ``UsageError`` for a parameter that only one prompt uses, rather than dropping it."""
    given = {
        "scan_layers": scan_layers,
        "scan_heads": scan_heads,
        "continuation": continuation is not None,
        "cache_scale": cache_scale != "layer",
        "cache_norm": cache_norm != "auto",
    }
    wrong = [name for name, on in given.items() if on]
    if wrong:
        verb = "applies" if len(wrong) == 1 else "apply"
        raise UsageError(f"{', '.join(wrong)} {verb} to one snapshot, not to a list of them")


def _scan(snapshot, model, tokenizer, results, layers, heads, continuation, notes, timing):
    if not (layers or heads):
        return None
    from kvscope.analyze.scan_ground_truth import measure_scan

    if model is None or tokenizer is None:
        notes["scan"] = "skipped: no model is loaded (analyzing a saved --snapshot)"
    elif continuation is None:
        notes["scan"] = "skipped: pass --continuation TEXT to score the scan on your prompt"
    else:
        t0 = time.perf_counter()
        from kvscope.analyze.pruning_potential import pruning_potential

        result = measure_scan(
            model,
            tokenizer,
            snapshot.info,
            results.get("pruning") or pruning_potential(snapshot),
            snapshot.text,
            continuation,
            heads=heads,
        )
        timing["scan"] = time.perf_counter() - t0
        return result
    return None


def _finish(snapshot, results, notes, scan, timing, truth_bytes, fmt, options) -> AnalyzeResult:
    from kvscope.analyze.figure_registry import FIGURES, FigureData, draw_figures
    from kvscope.analyze.metrics import build_metrics

    meta = {
        "model": snapshot.info.name,
        "layers": snapshot.n_layers,
        "layer": options["layer"],
        "n_positions": snapshot.n_positions,
        "cache_scale": options["cache_scale"],
        "cache_norm": options["cache_norm"],
    }
    scan_arrays = {k: scan[k] for k in ("layers", "heads") if scan and k in scan}
    t0 = time.perf_counter()
    figures, skipped = draw_figures(FigureData(results, meta, scan_arrays), notes)
    timing["plotting"] = time.perf_counter() - t0
    status = _status(FIGURES, figures, skipped, fmt)
    metrics = build_metrics(snapshot, results, notes, status, options, scan)
    verdict = metrics["headline"].get("verdict", "Attention was not captured, so importance was not checked.")
    tokens = token_data(results) if "tokens" in results else None
    return AnalyzeResult(metrics, verdict, figures, results, fmt, timing, tokens, truth_bytes)


def _status(specs, figures, skipped, fmt) -> dict[str, dict]:
    return {
        name: {"files": [f"{stem}.{fmt}" for stem in spec.files]} if name in figures else {"skipped": skipped[name]}
        for name, spec in specs.items()
    }


def analyze_many(
    snapshots: Iterable[KVSnapshot],
    *,
    model: Any = None,
    layer: int | None = None,
    sparsity_threshold: float = 1e-5,
    sink_share: float = 0.2,
    ground_truth: Any = None,
    fmt: str = "png",
    quiet: bool = True,
    total: int | None = None,
) -> AnalyzeResult:
    """Analyses of each snapshot (consumed one at a time, so a generator keeps one in memory), then the
    figures and metrics aggregated over them (``kvscope.analyze.many``). ``ground_truth``: the path of a
    leave-one-out file, used for the prompt whose token ids it was measured on."""
    from kvscope.analyze.figure_registry import FIGURES, FigureData, draw_figures
    from kvscope.analyze.many import aggregate
    from kvscope.analyze.metrics import build_many_metrics
    from kvscope.progress import track

    t0 = time.perf_counter()
    runs, infos, tokens, first, notes, matched = [], [], [], None, {}, []
    for i, snap in enumerate(track(snapshots, "analyzing prompts", total=total, quiet=quiet)):
        lay = _check(layer, snap.n_layers, "layer", "auto", fmt)
        truth = many_ground_truth(ground_truth, snap, i, matched)
        ctx = run_all(
            snap,
            AnalysisOptions(
                layer=lay, sparsity_threshold=sparsity_threshold, sink_share=sink_share, delta_loglik=truth
            ),
            model=model,
            only=many_analyses(),
        )
        runs.append(ctx.results)
        notes.update({f"prompt {i}: {k}": v for k, v in ctx.notes.items()})
        tokens.append(snap.n_positions)
        infos.append(
            {
                "tokens": snap.n_positions,
                "characters": len(snap.text),
                "verdict": ctx.results["importance"].verdict if "importance" in ctx.results else None,
            }
        )
        first = first or snap
    if first is None:
        raise UsageError("no prompts to analyze")
    if ground_truth is not None:
        notes["ground_truth"] = ground_truth_note(ground_truth, matched, len(runs))
    many = aggregate(runs, tokens)
    timing = {"analysis": time.perf_counter() - t0}
    t0 = time.perf_counter()
    data = FigureData({**runs[0], "many": many}, {"model": first.info.name, "layers": first.n_layers})
    figures, skipped = draw_figures(data, notes, many=True)
    timing["plotting"] = time.perf_counter() - t0
    options = {
        "sparsity_threshold": sparsity_threshold,
        "sink_share": sink_share,
        "format": fmt,
        "layer": check_layer(layer, first.n_layers),
        "ground_truth": notes.get("ground_truth"),
    }
    metrics = build_many_metrics(
        infos, first.info.to_dict(), many, notes, _status(FIGURES, figures, skipped, fmt), options
    )
    truth_bytes = Path(ground_truth).read_bytes() if matched else None
    tokens_data = token_data(runs[0]) if "tokens" in runs[0] else None
    return AnalyzeResult(metrics, many.verdict, figures, runs[0], fmt, timing, tokens_data, truth_bytes)


def analyze_texts(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    info: Any = None,
    truncate: bool = False,
    quiet: bool = True,
    **kw: Any,
) -> AnalyzeResult:
    """Capture each text (attention and queries) and analyze them together; one text = :func:`analyze`.

    Every text is measured before the first one runs: one longer than the model's positions is refused
    (``UsageError`` naming it) unless ``truncate``, which keeps its first tokens with a warning."""
    from kvscope.capture.capturing import capture
    from kvscope.errors import expect, expect_model
    from kvscope.models import describe

    expect_model(model, tokenizer)
    expect(texts, (list, tuple), "texts", "a list of strings")
    info = info or describe(model)
    check_text_lengths(tokenizer, texts, info.max_positions, truncate)
    snaps = (capture(model, tokenizer, t, info=info, attention=True, queries=True, truncate=truncate) for t in texts)
    if len(texts) == 1:
        return analyze(next(snaps), model=model, tokenizer=tokenizer, quiet=quiet, **kw)
    return analyze_many(snaps, model=model, quiet=quiet, total=len(texts), **kw)


def check_text_lengths(tokenizer: Any, texts: list[str], max_positions: int, truncate: bool) -> None:
    """Refuse, before any text runs, an empty text or one longer than ``max_positions`` tokens (counted as
    ``encode_prompt`` counts them); with ``truncate`` a long one is left for the capture to cut, with a warning."""
    from kvscope.errors import ParameterTypeError

    if not texts:
        raise UsageError("no prompts to analyze")
    for i, text in enumerate(texts):
        where = f"prompt {i + 1} of {len(texts)}"
        if not isinstance(text, str):
            raise ParameterTypeError(f"texts must hold strings: {where} is {type(text).__name__}")
        if not text.strip():
            raise UsageError(f"{where} is empty")
        if truncate or not max_positions:
            continue
        n = len(tokenizer(text).input_ids)
        if n > max_positions:
            raise UsageError(
                f"{where} has {n:,} tokens but the model takes at most {max_positions:,}: shorten it or pass truncate",
                param="truncate",
            )
