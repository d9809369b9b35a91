"""Quantization of the cached keys and values at equal cost: error against effective bits per element.

Every point is a (scheme, group size, bits) configuration of asymmetric min-max uniform quantization
(``kvscope.quant.quantize_with_stats``) whose scale and zero point are stored in float16 and used
rounded. Its cost is the **effective bits per element**: ``(code bytes + scale/zero bytes) * 8 /
elements``, so a scheme with more, smaller groups pays for them. Schemes:

- ``tensor``: one scale and zero per layer tensor;
- ``token/gN``: one per N consecutive head_dim channels of a (kv_head, position) (KIVI's values);
- ``channel/gN``: one per (kv_head, channel) over N consecutive positions (KIVI's keys, Liu et al., ICML
  2024: keys have fixed outlier channels).

``token/g32`` and ``channel/g32`` cost the same (32 elements share 32 bits of statistics: +1 bit per
element), so they are compared at equal overhead. ``float16`` rounding is the 16-bit reference point.

Errors (0 = exact):

- ``tensor``: ||x_q - x|| / ||x||, all layers pooled (Frobenius);
- ``output``: ||o_q - o|| / ||o|| of the attention output of the last ``n_queries`` queries in up to
  ``n_layers`` evenly spaced full layers, recomputed with the one attention helper and the model's scale
  and soft-capping (``kvscope.analyze.attention_spec``), quantizing only K or only V;
- ``kl``: end to end, the next-token KL divergence ``KL(p || p_q)`` in nats, mean over the last
  ``n_kl`` positions, when those are decoded by the model from a cache of the earlier positions that is
  unquantized (p) or quantized (p_q); for the equal-cost variants (``KL_VARIANTS``) at 4 and 2 bits.
  Needs the model; skipped, with the reason, without it or when a
  layer keeps a sliding window (the snapshot then lacks the evicted positions a prefix cache needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kvscope.analyze.attention_spec import AttentionSpec, attention_spec, full_layers, parity
from kvscope.attention import causal_probs
from kvscope.snapshot import KVSnapshot

BITS = (8, 4, 3, 2)
SIXTEEN_BIT = "float16"
STATS = torch.float16
KL_VARIANTS = ("tensor", "token/g32", "token/g16", "channel/g32")
KL_BITS = (4, 2)  # one batched decode of 1 + 2 x 3 x 2 caches; 8 bits is ~1e-4 nats and not worth its cost
PARITY_LIMIT = 1e-3


@dataclass(frozen=True)
class QuantizationError:
    """Per kind ("key", "value") and variant (``variants``): ``[len(bits)]`` arrays ``effective_bits``,
    ``tensor``, ``output`` and ``kl`` (NaN where not measured). ``float16[kind]``: tensor error of float16
    rounding (16 effective bits). ``notes``: why output error or KL were not measured."""

    bits: tuple[int, ...]
    variants: tuple[str, ...]
    effective_bits: dict[str, dict[str, np.ndarray]]
    tensor: dict[str, dict[str, np.ndarray]]
    output: dict[str, dict[str, np.ndarray]]
    kl: dict[str, dict[str, np.ndarray]]
    float16: dict[str, float]
    output_layers: list[int]
    n_queries: int
    n_kl: int
    sixteen_bit: str = SIXTEEN_BIT
    notes: dict[str, str] = field(default_factory=dict)


def variants_for(head_dim: int) -> tuple[str, ...]:
    """Variant names: tensor, token groups that divide head_dim, channel groups of 32/64/128 positions."""
    tokens = [f"token/g{g}" for g in sorted({32, head_dim}) if g <= head_dim and head_dim % g == 0]
    return ("tensor", *tokens, "channel/g32", "channel/g64", "channel/g128")


def fake_quantize(x: torch.Tensor, bits: int, variant: str) -> tuple[torch.Tensor, int]:
    """Dequantized ``x`` ``[..., position, head_dim]`` and its stored bytes (codes + float16 stats)."""
    from kvscope import quant

    scheme, _, g = variant.partition("/g")
    q = quant.quantize_with_stats(x, bits, scheme, int(g) if g else None, STATS)
    return q.tensor, q.nbytes


def _quantize_layers(tensors: list[torch.Tensor], bits: int, variant: str) -> tuple[list[torch.Tensor], int]:
    """Each layer quantized on its own: token and channel groups never span layers or kv_heads, so those
    run once on all layers stacked along kv_head (same result, far fewer calls); total bytes."""
    if not variant.startswith("tensor") and len({t.shape for t in tensors}) == 1:
        xq, nbytes = fake_quantize(torch.cat(tensors), bits, variant)
        return list(xq.split(tensors[0].shape[0])), nbytes
    out, total = [], 0
    for x in tensors:
        xq, nbytes = fake_quantize(x, bits, variant)
        out.append(xq)
        total += nbytes
    return out, total


def _sq(x: torch.Tensor) -> float:
    return float(x.square().sum(dtype=torch.float64))


def _attention_output(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spec: AttentionSpec, l: int) -> torch.Tensor:
    a = causal_probs(q, k, spec.scaling[l], spec.softcap)
    return (a @ v.float().repeat_interleave(q.shape[0] // k.shape[0], 0)).double()


def _output_layers(snapshot: KVSnapshot, spec: AttentionSpec, n_layers: int) -> tuple[list[int], str]:
    if snapshot.queries is None:
        return [], "attention-output error skipped: the snapshot has no queries (capture with queries)"
    full = full_layers(snapshot)
    if not full:
        return [], (
            "attention-output error skipped: every layer keeps a sliding window, whose cache lacks the "
            "older keys the prompt's queries saw"
        )
    picked = (
        sorted({full[int(round(x))] for x in np.linspace(0, len(full) - 1, min(n_layers, len(full)))}) if full else []
    )
    if spec.source != "model" and picked:
        gap = parity(snapshot, picked[0], spec)
        if np.isfinite(gap) and gap > PARITY_LIMIT:
            return [], (
                f"attention-output error skipped: recomputing attention with the default scale "
                f"head_dim**-0.5 differs from the captured attention by {gap:.1e} (relative), so this "
                "model uses another score scale or soft-capping; analyze with the model loaded"
            )
    return picked, ""


def quantization_error(
    snapshot: KVSnapshot,
    bits: tuple[int, ...] = BITS,
    n_queries: int = 64,
    n_layers: int = 6,
    model: Any = None,
    n_kl: int = 4,
) -> QuantizationError:
    """Effective bits, tensor, attention-output and (with ``model``) next-token KL errors; module doc."""
    spec = attention_spec(snapshot, model)
    variants = variants_for(snapshot.keys[0].shape[-1])
    out_layers, out_note = _output_layers(snapshot, spec, n_layers)
    nq = min(n_queries, snapshot.n_positions)
    refs = {
        l: _attention_output(snapshot.queries[l][:, -nq:], snapshot.keys[l], snapshot.values[l], spec, l)
        for l in out_layers
    }
    kl_run = _kl_runner(snapshot, model, n_kl)
    notes = {k: v for k, v in (("output", out_note), ("kl", kl_run if isinstance(kl_run, str) else "")) if v}
    wanted = [
        (kind, nb, var)
        for kind in ("key", "value")
        for var in variants
        if var in KL_VARIANTS
        for nb in bits
        if nb in KL_BITS
    ]
    kl_values = kl_run(wanted) if callable(kl_run) else {}
    eff, ten, out, kl, f16 = {}, {}, {}, {}, {}
    for kind, tensors in (("key", snapshot.keys), ("value", snapshot.values)):
        ref_sq = sum(_sq(x) for x in tensors)
        numel = sum(x.numel() for x in tensors)
        f16[kind] = float(np.sqrt(sum(_sq(x.half().float() - x) for x in tensors) / max(ref_sq, 1e-300)))
        eff[kind], ten[kind], out[kind], kl[kind] = {}, {}, {}, {}
        for var in variants:
            e, t, o, d = (np.full(len(bits), np.nan) for _ in range(4))
            for b, nb in enumerate(bits):
                quantized, nbytes = _quantize_layers(tensors, nb, var)
                e[b] = nbytes * 8 / numel
                t[b] = np.sqrt(sum(_sq(xq - x) for xq, x in zip(quantized, tensors)) / max(ref_sq, 1e-300))
                if out_layers:
                    o[b] = _output_error(snapshot, refs, quantized, kind, nq, spec)
                d[b] = kl_values.get((kind, nb, var), np.nan)
            eff[kind][var], ten[kind][var], out[kind][var], kl[kind][var] = e, t, o, d
    return QuantizationError(
        tuple(bits),
        variants,
        eff,
        ten,
        out,
        kl,
        f16,
        out_layers,
        nq if out_layers else 0,
        n_kl if callable(kl_run) else 0,
        notes=notes,
    )


def _output_error(snapshot, refs, quantized, kind, nq, spec) -> float:
    """Relative error of the attention output, the sampled layers ``refs`` pooled (Frobenius)."""
    num = den = 0.0
    for l, ref in refs.items():
        k, v = (quantized[l], snapshot.values[l]) if kind == "key" else (snapshot.keys[l], quantized[l])
        got = _attention_output(snapshot.queries[l][:, -nq:], k, v, spec, l)
        num += float((got - ref).pow(2).sum())
        den += float(ref.pow(2).sum())
    return float(np.sqrt(num / den)) if den > 0 else 0.0


def _kl_runner(snapshot: KVSnapshot, model: Any, n_kl: int):
    """A function ``(kind, bits, variant) -> KL`` or the reason KL cannot be measured."""
    if model is None:
        return "next-token KL skipped: no model is loaded (analyzing a saved snapshot)"
    windowed = [l for l in range(snapshot.n_layers) if l not in full_layers(snapshot)]
    if windowed:
        return (
            f"next-token KL skipped: layer {windowed[0]} keeps a sliding window of "
            f"{snapshot.keys[windowed[0]].shape[1]} positions, so the snapshot lacks the positions a "
            "prefix cache would need"
        )
    if snapshot.n_positions < 2:
        return "next-token KL skipped: fewer than 2 tokens"
    m = min(n_kl, snapshot.n_positions - 1)
    cut = snapshot.n_positions - m
    prefix_k = [k[:, :cut] for k in snapshot.keys]
    prefix_v = [v[:, :cut] for v in snapshot.values]

    def run(configs: list[tuple[str, int, str]], batch: int = 32) -> dict[tuple[str, int, str], float]:
        """KL of every ``(kind, bits, variant)``, decoded in batches (row 0 of each batch: unquantized)."""
        out: dict[tuple[str, int, str], float] = {}
        for s in range(0, len(configs), batch):
            part = configs[s : s + batch]
            ks, vs = [[t] for t in prefix_k], [[t] for t in prefix_v]
            for kind, bits, variant in part:
                quantized, _ = _quantize_layers(prefix_k if kind == "key" else prefix_v, bits, variant)
                for l in range(len(ks)):
                    ks[l].append(quantized[l] if kind == "key" else prefix_k[l])
                    vs[l].append(quantized[l] if kind == "value" else prefix_v[l])
            logp = _decode_logprobs(model, snapshot, [torch.stack(k) for k in ks], [torch.stack(v) for v in vs], cut)
            ref = logp[0]
            for j, cfg in enumerate(part, 1):
                out[cfg] = float((ref.exp() * (ref - logp[j])).sum(-1).mean())
        return out

    return run


def _decode_logprobs(model: Any, snapshot: KVSnapshot, keys, values, cut: int) -> torch.Tensor:
    """``[batch, m, vocab]`` float64 log-probabilities of positions ``cut..P-1`` decoded on caches
    ``keys[layer]``/``values[layer]`` ``[batch, kv_head, cut, head_dim]`` (one cache per batch row)."""
    from kvscope.compat import forward
    from kvscope.hfcache import cache_from_tensors

    p = next(model.parameters())
    n = keys[0].shape[0]
    cache = cache_from_tensors(
        model.config, [k.to(p.device, p.dtype) for k in keys], [v.to(p.device, p.dtype) for v in values]
    )
    ids = snapshot.token_ids[cut:][None].expand(n, -1).to(p.device)
    pos = torch.arange(cut, snapshot.n_positions, device=p.device)[None].expand(n, -1)
    with torch.inference_mode():
        out = forward(model, cache, input_ids=ids, position_ids=pos, use_cache=True)
    return torch.log_softmax(out.logits.double().cpu(), dim=-1)


__all__ = ["BITS", "KL_VARIANTS", "QuantizationError", "fake_quantize", "quantization_error", "variants_for"]
