"""Quantization error of the cached keys and values, as tensor error and as attention-output error.

Bits: 16, 8, 4, 2. "16 bits" is rounding to float16 (IEEE half), not an int16 grid; the others are
asymmetric min-max uniform integer grids (``kvscope.quant.quantize``) under three schemes:

- ``tensor``: one scale and zero point per layer tensor;
- ``token``: one per (kv_head, position) vector, along head_dim (KIVI's choice for values);
- ``channel``: one per (kv_head, channel) over groups of ``group_size`` positions (KIVI's choice for
  keys, Liu et al., ICML 2024, because keys have fixed outlier channels).

Errors (relative, 0 = exact):

- ``tensor``: ||x_q - x|| / ||x|| with all layers pooled (Frobenius norms);
- ``output``: ||o_q - o|| / ||o|| for the attention output ``o = softmax(q k^T d^-0.5) v`` of the
  last ``n_queries`` query positions, in up to ``n_layers`` evenly spaced layers, quantizing only K
  (key error) or only V (value error). Needs captured queries; NaN otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvscope.errors import KvscopeError
from kvscope.snapshot import KVSnapshot

BITS = (16, 8, 4, 2)
SCHEMES = ("tensor", "token", "channel")
GROUP_SIZE = 32
SIXTEEN_BIT = "float16"


@dataclass(frozen=True)
class QuantizationError:
    """``tensor[kind][scheme]`` and ``output[kind][scheme]``: ``[len(bits)]`` relative errors for
    kind "key"/"value"; ``layer_tensor[kind][scheme]``: ``[layer, len(bits)]``."""

    bits: tuple[int, ...]
    schemes: tuple[str, ...]
    sixteen_bit: str
    group_size: int
    tensor: dict[str, dict[str, np.ndarray]]
    output: dict[str, dict[str, np.ndarray]]
    layer_tensor: dict[str, dict[str, np.ndarray]]
    output_layers: list[int]
    n_queries: int


def _quant():
    try:
        from kvscope import quant
    except ImportError:
        raise KvscopeError("kvscope.quant is not available in this build") from None
    return quant


def fake_quantize(x: torch.Tensor, bits: int, scheme: str, group_size: int = GROUP_SIZE) -> torch.Tensor:
    """Dequantized ``x`` ``[kv_head, position, head_dim]``: float16 rounding at 16 bits, else the grid."""
    quant = _quant()
    if bits == 16:
        return quant.round_to_dtype(x, SIXTEEN_BIT).to(x.dtype)
    return quant.quantize(x, bits, scheme, group_size=group_size if scheme == "channel" else None)


def _attention_output(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[q_head, n_q, head_dim]`` for the last ``n_q`` of ``P`` positions; q ``[q_head, n_q, d]``."""
    group = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    n, nq = k.shape[1], q.shape[1]
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    qpos = torch.arange(n - nq, n)[:, None]
    scores = scores.masked_fill(torch.arange(n)[None, :] > qpos, float("-inf"))
    return scores.softmax(-1) @ v


def _sq(x: torch.Tensor) -> float:
    """Sum of squares, accumulated in float64."""
    return float(x.square().sum(dtype=torch.float64))


def _quantize_all(tensors: list[torch.Tensor], stacked: torch.Tensor | None, bits: int, scheme: str,
                  group_size: int) -> list[torch.Tensor]:
    """Each layer's dequantized tensor. Token and channel groups never span layers or kv_heads, so
    those schemes run once on all layers stacked (same result, far fewer calls)."""
    if scheme == "tensor" or stacked is None:
        return [fake_quantize(x, bits, scheme, group_size) for x in tensors]
    return list(fake_quantize(stacked, bits, scheme, group_size).split(tensors[0].shape[0]))


def quantization_error(snapshot: KVSnapshot, bits: tuple[int, ...] = BITS, group_size: int = GROUP_SIZE,
                       n_queries: int = 64, n_layers: int = 6) -> QuantizationError:
    """Relative tensor and attention-output errors for every (kind, scheme, bits); see the module doc."""
    _quant()
    L = snapshot.n_layers
    out_layers = sorted({int(round(x)) for x in np.linspace(0, L - 1, min(n_layers, L))})
    if snapshot.queries is None or any(snapshot.keys[l].shape[1] != snapshot.n_positions for l in out_layers):
        out_layers = []
    nq = min(n_queries, snapshot.n_positions)
    refs = {l: _attention_output(snapshot.queries[l][:, -nq:].float(), snapshot.keys[l].float(),
                                 snapshot.values[l].float()).double() for l in out_layers}
    tensor, output, per_layer = {}, {}, {}
    for kind, tensors in (("key", snapshot.keys), ("value", snapshot.values)):
        sq_ref = np.array([_sq(x) for x in tensors])
        stacked = torch.cat(tensors) if len({t.shape for t in tensors}) == 1 else None
        tensor[kind], output[kind], per_layer[kind] = {}, {}, {}
        for scheme in SCHEMES:
            sq_err, out_err = np.zeros((L, len(bits))), np.full(len(bits), np.nan)
            for b, nb in enumerate(bits):
                quantized = _quantize_all(tensors, stacked, nb, scheme, group_size)
                sq_err[:, b] = [_sq(xq - x) for xq, x in zip(quantized, tensors)]
                if out_layers:
                    out_err[b] = _output_error(snapshot, refs, quantized, kind, nq)
            tensor[kind][scheme] = np.sqrt(sq_err.sum(0) / max(sq_ref.sum(), 1e-300))
            per_layer[kind][scheme] = np.sqrt(sq_err / np.maximum(sq_ref, 1e-300)[:, None])
            output[kind][scheme] = out_err
    return QuantizationError(tuple(bits), SCHEMES, SIXTEEN_BIT, group_size, tensor, output, per_layer,
                             out_layers, nq if out_layers else 0)


def _output_error(snapshot: KVSnapshot, refs: dict[int, torch.Tensor], quantized: list[torch.Tensor],
                  kind: str, nq: int) -> float:
    """Relative error of the attention output, the sampled layers ``refs`` pooled (Frobenius)."""
    num = den = 0.0
    for l, ref in refs.items():
        q = snapshot.queries[l][:, -nq:].float()
        k, v = (quantized[l], snapshot.values[l]) if kind == "key" else (snapshot.keys[l], quantized[l])
        got = _attention_output(q, k.float(), v.float()).double()
        num += float((got - ref).pow(2).sum())
        den += float(ref.pow(2).sum())
    return float(np.sqrt(num / den)) if den > 0 else 0.0
