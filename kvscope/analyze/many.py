"""Aggregation of per-prompt analyses over many prompts: every number with a 95 % bootstrap interval
over prompts (``kvscope.stats.bootstrap_ci``; prompts are the resampled unit).

Each analysis aggregates its own results (``Analysis.aggregate`` in ``kvscope.analyze.entries``):

- per-layer curves (std, mean |x|, K-V norm correlation, sink share of position 0, look-back on non-sink
  attention and sink share of the heads): mean over prompts with a band;
- proxy-vs-reference correlations (partial Spearman given position): one value per prompt, their
  distribution and the interval of the mean; the verdict's class comes from that interval
  (``kvscope.analyze.verdict.classify``);
- sinks: in how many prompts position 0 is a sink, and how many sinks a prompt has;
- quantization: every (kind, variant, bits) error as a mean with an interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from kvscope.stats import bootstrap_bands

Band = tuple[np.ndarray, np.ndarray, np.ndarray]
NO_VERDICT = "Attention was not captured, so importance proxies were not checked."


@dataclass(frozen=True)
class ManyPrompts:
    """See the module doc. ``correlations[ref][proxy]``: ``[prompt]``; ``intervals[ref][proxy]``:
    ``(mean, low, high)``; ``layer_bands[name]``: ``(mean, low, high)`` each ``[layer]``;
    ``quantization[kind][variant][error]``: ``(mean, low, high)`` each ``[bits]``; ``extra``: what
    analyses outside these fields add (by their own keys)."""

    n_prompts: int
    tokens: list[int]
    layer_bands: dict[str, Band] = field(default_factory=dict)
    correlations: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    intervals: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)
    reference: str = ""
    verdict: str = NO_VERDICT
    kind: str = "unknown"
    disagree: bool = False
    sinks: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    type_norms: dict[str, dict[str, np.ndarray]] = field(default_factory=lambda: {"key_norm": {}, "value_norm": {}})
    extra: dict[str, Any] = field(default_factory=dict)


def bands(rows: list[np.ndarray]) -> Band:
    """Mean and 95 % bootstrap band over prompts of one per-layer curve per prompt."""
    return bootstrap_bands(np.vstack(rows))


def aggregate(runs: list[dict[str, Any]], tokens: list[int]) -> ManyPrompts:
    """Aggregate the per-prompt analysis results ``runs`` (each ``{name: result}``) of ``len(tokens)`` prompts:
    each registered analysis with an ``aggregate`` gets its results over the prompts where it ran, and what it
    returns is merged (dicts such as ``layer_bands`` key by key) in registry order."""
    from kvscope.analyze.registry import ANALYSES

    known = {f.name for f in fields(ManyPrompts)} - {"n_prompts", "tokens", "extra"}
    merged: dict[str, Any] = {}
    for name, analysis in ANALYSES.items():
        results = [r[name] for r in runs if name in r]
        if analysis.aggregate is None or not results:
            continue
        for key, value in analysis.aggregate(results).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                value = {**merged[key], **value}
            merged[key] = value
    extra = {k: v for k, v in merged.items() if k not in known}
    return ManyPrompts(len(runs), list(tokens), **{k: v for k, v in merged.items() if k in known}, extra=extra)
