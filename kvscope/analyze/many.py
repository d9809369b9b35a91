"""Aggregation of per-prompt analyses over many prompts: every number with a 95 % bootstrap interval
over prompts (``kvscope.stats.bootstrap_ci``; prompts are the resampled unit).

- per-layer curves (std, mean |x|, K-V norm correlation, sink share of position 0, look-back on non-sink
  attention and sink share of the heads): mean over prompts with a band;
- proxy-vs-reference correlations (partial Spearman given position): one value per prompt, their
  distribution and the interval of the mean; the verdict's class comes from that interval
  (``kvscope.analyze.verdict.classify``);
- sinks: in how many prompts position 0 is a sink, and how many sinks a prompt has;
- quantization: every (kind, variant, bits) error as a mean with an interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kvscope.analyze.importance import PROXIES, REFERENCES, classify, disagreement, sentence
from kvscope.analyze.verdict import MIN_TOKENS
from kvscope.stats import bootstrap_bands, bootstrap_ci, nanmean_or_nan

Band = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ManyPrompts:
    """See the module doc. ``correlations[ref][proxy]``: ``[prompt]``; ``intervals[ref][proxy]``:
    ``(mean, low, high)``; ``layer_bands[name]``: ``(mean, low, high)`` each ``[layer]``;
    ``quantization[kind][variant][error]``: ``(mean, low, high)`` each ``[bits]``."""

    n_prompts: int
    tokens: list[int]
    layer_bands: dict[str, Band]
    correlations: dict[str, dict[str, np.ndarray]]
    intervals: dict[str, dict[str, tuple[float, float, float]]]
    reference: str
    verdict: str
    kind: str
    disagree: bool
    sinks: dict[str, Any]
    quantization: dict[str, Any]
    type_norms: dict[str, dict[str, np.ndarray]]


def _bands(rows: list[np.ndarray]) -> Band:
    return bootstrap_bands(np.vstack(rows))


def _layer_bands(runs: list[dict[str, Any]]) -> dict[str, Band]:
    out: dict[str, Band] = {}
    stats = [r["layer_stats"] for r in runs if "layer_stats" in r]
    for name in ("std_k", "std_v", "mean_abs_k", "mean_abs_v", "kv_norm_spearman"):
        if stats:
            out[name] = _bands([getattr(s, name) for s in stats])
    sinks = [r["sinks"] for r in runs if "sinks" in r and r["sinks"].detected]
    if sinks:
        out["first_share"] = _bands([s.layer_share[:, 0] for s in sinks])
    heads = [r["heads"] for r in runs if "heads" in r]
    if heads:
        out["lookback"] = _bands([nanmean_or_nan(h.lookback, axis=1) for h in heads])
        out["sink_share"] = _bands([nanmean_or_nan(h.sink_share, axis=1) for h in heads])
    return out


def _value(imp: Any, ref: str, proxy: str) -> float:
    """One prompt's partial rho, NaN for a prompt too short to judge (``MIN_TOKENS``)."""
    return imp.partial[ref].get(proxy, np.nan) if imp.n_tokens >= MIN_TOKENS else np.nan


def _correlations(runs: list[dict[str, Any]]) -> tuple[dict, dict, str]:
    imps = [r["importance"] for r in runs if "importance" in r]
    refs = [ref for ref in REFERENCES if imps and all(ref in i.partial for i in imps)]
    names = {ref: (*PROXIES, "attention") if ref != "attention" else PROXIES for ref in refs}
    corr = {ref: {p: np.array([_value(i, ref, p) for i in imps]) for p in names[ref]} for ref in refs}
    ivals = {ref: {p: bootstrap_ci(v) for p, v in d.items()} for ref, d in corr.items()}
    return corr, ivals, refs[0] if refs else ""


def _verdict(corr: dict, ivals: dict, reference: str) -> tuple[str, str, bool]:
    """The verdict over prompts: its class from the bootstrap interval; "over N prompts" counts only the
    prompts with a value (a prompt too short, or whose reference is monotone in position, has none)."""
    if not reference:
        return "Attention was not captured, so importance proxies were not checked.", "unknown", False
    mean, lo, hi = ivals[reference]["magnitude"]
    n = int(np.isfinite(corr[reference]["magnitude"]).sum())
    kind = classify(mean, lo, hi)
    of = len(corr[reference]["magnitude"])
    basis = f"over {n} prompts (bootstrap over prompts)" + (f"; {of - n} of {of} had no value" if n < of else "")
    reason = "no prompt has a value: each is too short or its reference is monotone in position"
    text = sentence(kind, reference, REFERENCES[reference], mean, (lo, hi), basis, reason if n == 0 else "")
    disagree = False
    if reference == "leave_one_out" and "attention" in ivals:
        m2, l2, h2 = ivals["attention"]["magnitude"]
        other = classify(m2, l2, h2)
        disagree = other != kind
        if disagree:
            text += disagreement(other, m2, l2, h2)
    return text, kind, disagree


def _sinks(runs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r["sinks"] for r in runs if "sinks" in r and r["sinks"].detected]
    if not found:
        return {}
    first = np.array([0 in s.positions.tolist() for s in found], dtype=float)
    count = np.array([s.positions.size for s in found], dtype=float)
    share = np.array([float(s.layer_share[:, 0].mean()) for s in found])
    return {
        "prompts": len(found),
        "first_token_is_sink": int(first.sum()),
        "sinks_per_prompt": bootstrap_ci(count),
        "first_token_share": bootstrap_ci(share),
    }


def _quantization(runs: list[dict[str, Any]]) -> dict[str, Any]:
    qs = [r["quantization"] for r in runs if "quantization" in r]
    if not qs:
        return {}
    q0 = qs[0]
    out: dict[str, Any] = {"bits": list(q0.bits), "variants": list(q0.variants), "notes": dict(q0.notes)}
    for kind in ("key", "value"):
        out[kind] = {}
        for var in q0.variants:
            entry = {"effective_bits": np.mean([q.effective_bits[kind][var] for q in qs], axis=0)}
            for err in ("tensor", "output", "kl"):
                entry[err] = _bands([getattr(q, err)[kind][var] for q in qs])
            out[kind][var] = entry
    return out


def _type_norms(runs: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    tables = [r["tokens"] for r in runs if "tokens" in r]
    out: dict[str, dict[str, np.ndarray]] = {}
    for which in ("key_norm", "value_norm"):
        out[which] = {}
        for t in tables:
            for ty, idx in t.by_type.items():
                vals = getattr(t, which)[idx]
                out[which][ty] = np.concatenate([out[which].get(ty, np.zeros(0)), vals])
    return out


def aggregate(runs: list[dict[str, Any]], tokens: list[int]) -> ManyPrompts:
    """Aggregate the per-prompt analysis results ``runs`` (each ``{name: result}``) of ``len(tokens)`` prompts."""
    corr, ivals, ref = _correlations(runs)
    verdict, kind, disagree = _verdict(corr, ivals, ref)
    return ManyPrompts(
        n_prompts=len(runs),
        tokens=list(tokens),
        layer_bands=_layer_bands(runs),
        correlations=corr,
        intervals=ivals,
        reference=ref,
        verdict=verdict,
        kind=kind,
        disagree=disagree,
        sinks=_sinks(runs),
        quantization=_quantization(runs),
        type_norms=_type_norms(runs),
    )
