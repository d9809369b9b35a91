"""Assemble ``metrics.json``: model facts, prompt size, every analysis result, headline numbers,
warnings and which figures were written or skipped (and why).

Not stored: the pixels of ``kv_cache_layers`` (block means of |K|, |V|, up to 256 rows x channels per
layer); their summaries are here (colour limits, per-channel means in ``layer_stats``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kvscope import __version__
from kvscope.snapshot import KVSnapshot

SCHEMA_VERSION = 2
FEW_TOKENS = 16


def _analysis_dict(name: str, result: Any) -> Any:
    """The result's ``metrics.json`` entry, as its registry entry writes it (``Analysis.to_metrics``)."""
    from kvscope.analyze.registry import ANALYSES, plain

    return ANALYSES[name].to_metrics(result) if name in ANALYSES else plain(result)


def headline(snapshot: KVSnapshot, results: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the report leads with."""
    info = snapshot.info
    out: dict[str, Any] = {
        "tokens": snapshot.n_positions,
        # what the cache holds: a sliding-window layer keeps only its last window - 1 positions
        "kv_cache_bytes": info.kv_bytes_per_token // info.layers * sum(k.shape[1] for k in snapshot.keys),
        "kv_cache_dtype": info.dtype,
    }
    if "sinks" in results and results["sinks"].detected:
        out["sinks"] = [{"position": int(p), "token": snapshot.tokens[p]} for p in results["sinks"].positions]
    if "importance" in results:
        from kvscope.analyze.importance import layer_median

        imp = results["importance"]
        out["verdict"] = imp.verdict
        out["verdict_reference"] = imp.reference
        out["verdict_control"] = imp.control
        out["verdict_rho"] = imp.rho
        out["verdict_kind"] = imp.kind
        out["verdict_interval"] = list(imp.interval)
        out["verdict_tokens"] = imp.n_tokens
        out["references_disagree"] = imp.disagree
        out["median_partial_spearman_vs_attention"] = layer_median(imp)
    if "layer_stats" in results:
        st = results["layer_stats"]
        out["sparsity_pct"] = {"key": float(st.sparsity_k.mean() * 100), "value": float(st.sparsity_v.mean() * 100)}
        out["max_outlier_channel_ratio"] = {
            "key": float(np.nanmax(st.outlier_ratio_k)),
            "value": float(np.nanmax(st.outlier_ratio_v)),
        }
    if "distribution" in results:
        d = results["distribution"]
        out["excess_kurtosis"] = {"key": d.key.kurtosis, "value": d.value.kurtosis}
    if "quantization" in results:
        q = results["quantization"]
        i = q.bits.index(4) if 4 in q.bits else -1
        tok = next(v for v in q.variants if v.startswith("token/"))
        out["kivi_4bit"] = {
            "value_variant": tok,
            "key_channel_output_error": float(q.output["key"]["channel/g32"][i]),
            "value_token_output_error": float(q.output["value"][tok][i]),
            "key_channel_kl": float(q.kl["key"]["channel/g32"][i]),
            "value_token_kl": float(q.kl["value"][tok][i]),
            "effective_bits": float(q.effective_bits["key"]["channel/g32"][i]),
        }
    if "tokens" in results:
        t = results["tokens"]
        low = int(t.lowest[0])
        out["lowest_magnitude_token"] = {
            "position": low,
            "token": t.tokens[low],
            "is_sink": bool(t.sink[low]),
            "attention": float(t.attention[low]),
        }
    return out


def warnings_for(snapshot: KVSnapshot, results: dict[str, Any], notes: dict[str, str]) -> list[str]:
    """Plain-language warnings shown at the top of the report."""
    out = []
    if snapshot.n_positions < FEW_TOKENS:
        out.append(f"Only {snapshot.n_positions} tokens: correlations and distributions are unreliable.")
    if not snapshot.has_attention:
        out.append("No attention data: sinks are not detected and importance is not checked.")
    t = results.get("tokens")
    if t is not None and t.sink[t.lowest].any():
        names = ", ".join(repr(t.tokens[i]) for i in t.lowest if t.sink[i])
        out.append(
            f"Lowest-magnitude token(s) {names} are attention sinks: evicting by low magnitude would "
            "remove the tokens the model attends to most."
        )
    st = results.get("layer_stats")
    if st is not None and max(st.sparsity_k.max(), st.sparsity_v.max()) < 0.01:
        out.append(f"The cache is dense: under 1 % of elements are below {st.threshold:g} in every layer.")
    hs = results.get("heads")
    if hs is not None and np.isfinite(hs.parity) and hs.parity > 1e-3 and hs.scaling_source != "model":
        out.append(
            f"Recomputed attention differs from the captured one by {hs.parity:.1e} (relative): this "
            "model may scale or mask scores differently; head specialization is approximate."
        )
    out += [f"{name}: {note}" for name, note in notes.items()]
    return out


def build_metrics(
    snapshot: KVSnapshot,
    results: dict[str, Any],
    notes: dict[str, str],
    figures: dict,
    options: dict[str, Any],
    scan: dict[str, Any] | None,
) -> dict:
    """The whole ``metrics.json`` document (plain Python; ``fileio.write_json`` converts arrays). Timings
    are not in it (they are on the result and in the CLI's summary), so two saves are identical."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kvscope_version": __version__,
        "model": snapshot.info.to_dict(),
        "prompt": {"tokens": snapshot.n_positions, "characters": len(snapshot.text)},
        "options": options,
        "headline": headline(snapshot, results),
        "warnings": warnings_for(snapshot, results, notes),
        "figures": figures,
        "analyses": {name: _analysis_dict(name, r) for name, r in results.items()},
        "skipped_analyses": notes,
        "scan": scan,
    }


def build_many_metrics(
    snapshots_info: list[dict[str, Any]],
    model: dict[str, Any],
    many: Any,
    notes: dict[str, str],
    figures: dict,
    options: dict[str, Any],
) -> dict:
    """``metrics.json`` of a many-prompt run: per-prompt summaries and the aggregate with intervals."""
    head = {
        "prompts": many.n_prompts,
        "tokens": many.tokens,
        "verdict": many.verdict,
        "verdict_reference": many.reference,
        "verdict_control": "partial Spearman given position",
        "verdict_kind": many.kind,
        "references_disagree": many.disagree,
        "interval": "95 % percentile bootstrap over prompts (2000 resamples, seed 0)",
        "magnitude_vs_reference": many.intervals.get(many.reference, {}).get("magnitude"),
        "sinks": many.sinks,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kvscope_version": __version__,
        "model": model,
        "prompt": {"prompts": many.n_prompts, "tokens": many.tokens},
        "options": options,
        "headline": head,
        "warnings": [f"{k}: {v}" for k, v in notes.items()],
        "figures": figures,
        "per_prompt": snapshots_info,
        "aggregate": {
            "layer_bands": {k: {"mean": v[0], "low": v[1], "high": v[2]} for k, v in many.layer_bands.items()},
            "correlations": many.correlations,
            "intervals": many.intervals,
            "quantization": many.quantization,
            "sinks": many.sinks,
            **many.extra,
        },
    }
