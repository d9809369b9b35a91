"""Assemble ``metrics.json``: model facts, prompt size, every analysis result, headline numbers,
warnings and which figures were written or skipped (and why).

Not stored: the pixels of ``kv_cache_layers`` (block means of |K|, |V|, up to 256 rows x channels per
layer); their summaries are here (colour limits, per-channel means in ``layer_stats``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from kvscope import __version__
from kvscope.snapshot import KVSnapshot

SCHEMA_VERSION = 1
FEW_TOKENS = 16


def _plain(result: Any) -> Any:
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return result


def _analysis_dict(name: str, result: Any) -> Any:
    if name == "cache_maps":
        return {"block": result.block, "vmax_k": result.vmax_k, "vmax_v": result.vmax_v,
                "rows": len(result.key[0]) if result.key else 0, "note": "pixel data not stored"}
    if name == "distribution":
        return {"key": _plain(result.key), "value": _plain(result.value), "outlier_sigma": result.outlier_sigma,
                "layer_kurtosis_k": result.layer_kurtosis_k, "layer_kurtosis_v": result.layer_kurtosis_v}
    if name == "weights":
        return {"k_proj": _plain(result.k_proj), "v_proj": _plain(result.v_proj)}
    return _plain(result)


def headline(snapshot: KVSnapshot, results: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the report leads with."""
    info = snapshot.info
    out: dict[str, Any] = {"tokens": snapshot.n_positions,
                           "kv_cache_bytes": info.kv_bytes_per_token * snapshot.n_positions,
                           "kv_cache_dtype": info.dtype}
    if "sinks" in results and results["sinks"].detected:
        out["sinks"] = [{"position": int(p), "token": snapshot.tokens[p]} for p in results["sinks"].positions]
    if "importance" in results:
        imp = results["importance"]
        out["verdict"] = imp.verdict
        out["median_spearman_vs_attention"] = imp.median
    if "layer_stats" in results:
        st = results["layer_stats"]
        out["sparsity_pct"] = {"key": float(st.sparsity_k.mean() * 100), "value": float(st.sparsity_v.mean() * 100)}
        out["max_outlier_channel_ratio"] = {"key": float(np.nanmax(st.outlier_ratio_k)),
                                            "value": float(np.nanmax(st.outlier_ratio_v))}
    if "distribution" in results:
        d = results["distribution"]
        out["excess_kurtosis"] = {"key": d.key.kurtosis, "value": d.value.kurtosis}
    if "quantization" in results:
        q = results["quantization"]
        i = q.bits.index(4) if 4 in q.bits else -1
        out["kivi_4bit_output_error"] = {"key_per_channel": float(q.output["key"]["channel"][i]),
                                         "value_per_token": float(q.output["value"]["token"][i])}
    if "tokens" in results:
        t = results["tokens"]
        low = int(t.lowest[0])
        out["lowest_magnitude_token"] = {"position": low, "token": t.tokens[low], "is_sink": bool(t.sink[low]),
                                         "attention": float(t.attention[low])}
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
        out.append(f"Lowest-magnitude token(s) {names} are attention sinks: evicting by low magnitude would "
                   "remove the tokens the model attends to most.")
    st = results.get("layer_stats")
    if st is not None and max(st.sparsity_k.max(), st.sparsity_v.max()) < 0.01:
        out.append(f"The cache is dense: under 1 % of elements are below {st.threshold:g} in every layer.")
    hs = results.get("heads")
    if hs is not None and np.isfinite(hs.parity) and hs.parity > 1e-3:
        out.append(f"Recomputed attention differs from the captured one by {hs.parity:.1e} (relative): this "
                   "model may scale or mask scores differently; head specialization is approximate.")
    out += [f"{name}: {note}" for name, note in notes.items()]
    return out


def build_metrics(snapshot: KVSnapshot, results: dict[str, Any], notes: dict[str, str], figures: dict,
                  options: dict[str, Any], timing: dict[str, float], scan: dict[str, Any] | None) -> dict:
    """The whole ``metrics.json`` document (plain Python; ``fileio.write_json`` converts arrays)."""
    return {
        "schema_version": SCHEMA_VERSION, "kvscope_version": __version__,
        "model": snapshot.info.to_dict(),
        "prompt": {"tokens": snapshot.n_positions, "characters": len(snapshot.text)},
        "options": options, "timing_s": timing,
        "headline": headline(snapshot, results),
        "warnings": warnings_for(snapshot, results, notes),
        "figures": figures,
        "analyses": {name: _analysis_dict(name, r) for name, r in results.items()},
        "skipped_analyses": notes,
        "scan": scan,
    }
