"""Fake quantization of KV tensors: quantize to a uniform grid, dequantize, and count the bytes.

Tensors are shaped ``[..., position, head_dim]`` (a snapshot's ``[kv_head, position, head_dim]``
or a live cache's ``[batch, kv_head, position, head_dim]``). Every scheme is asymmetric min-max
uniform quantization: for each group, ``scale = (max - min) / (2**bits - 1)``, ``zero = min``,
``q = clamp(round((x - zero) / scale), 0, 2**bits - 1)`` and the dequantized value is
``q * scale + zero``. A constant group (``max == min``) is stored exactly.

Schemes (which elements share one scale/zero pair):

- ``"tensor"``: the whole tensor.
- ``"token"``: each position (or each group of ``group_size`` head_dim channels of a position).
- ``"channel"``: each head_dim channel (or each group of ``group_size`` consecutive positions of it).

KIVI (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache", ICML 2024)
quantizes keys per-channel and values per-token, in groups, and keeps a window of the most recent
tokens in full precision: ``kivi(keys, values, KiviSpec(...))``. Its byte count includes the packed
codes (``ceil(elements * bits / 8)`` per tensor), one scale and one zero per group (float16 by
default, and the dequantization uses those rounded statistics) and the full-precision residual
(keys: the last ``T mod R`` tokens, values: the last ``min(T, R)``, R = 128 by default, following
the paper's code), counted at the cache's dtype and at float16.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from kvscope.errors import UsageError

SCHEMES = ("tensor", "token", "channel")


@dataclass
class Quantized:
    """A dequantized tensor (same shape and dtype as the input) and what storing it costs.

    ``code_bytes`` = packed integer codes; ``stats_bytes`` = scales plus zeros; ``groups`` = number
    of scale/zero pairs.
    """

    tensor: torch.Tensor
    code_bytes: int
    stats_bytes: int
    groups: int

    @property
    def nbytes(self) -> int:
        return self.code_bytes + self.stats_bytes


def _check(bits: int, scheme: str, group_size: int | None) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise UsageError(f"bits must be an integer in 1..16, got {bits!r}")
    if scheme not in SCHEMES:
        raise UsageError(f"unknown quantization scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    if group_size is not None and (not isinstance(group_size, int) or group_size < 1):
        raise UsageError(f"group_size must be a positive integer, got {group_size!r}")


def _minmax(x: torch.Tensor, bits: int, dims: tuple[int, ...], stats_dtype: torch.dtype | None) -> torch.Tensor:
    """Dequantized ``x`` with one scale/zero per slice reduced over ``dims`` (float32 arithmetic)."""
    xf = x.float()
    lo = xf.amin(dim=dims, keepdim=True)
    hi = xf.amax(dim=dims, keepdim=True)
    levels = 2**bits - 1
    scale = (hi - lo) / levels
    if stats_dtype is not None:  # the statistics as they would be stored
        lo, scale = lo.to(stats_dtype).float(), scale.to(stats_dtype).float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round((xf - lo) / safe), 0, levels)
    out = torch.where(scale > 0, q * scale + lo, lo.expand_as(xf))
    return out.to(x.dtype)


def quantize_with_stats(
    x: torch.Tensor, bits: int, scheme: str, group_size: int | None = None, stats_dtype: torch.dtype | None = None
) -> Quantized:
    """Quantize-dequantize ``x`` ``[..., position, head_dim]`` and count its bytes.

    ``stats_dtype`` (e.g. ``torch.float16``) rounds each scale and zero to that dtype before
    dequantizing and sets their byte size; ``None`` keeps them exact and counts 4 bytes each.
    """
    _check(bits, scheme, group_size)
    if x.ndim < 2:
        raise UsageError("quantize expects a tensor shaped [..., position, head_dim]")
    n, d = x.shape[-2], x.shape[-1]
    lead = math.prod(x.shape[:-2])
    if scheme == "tensor":
        out, groups = _minmax(x, bits, tuple(range(x.ndim)), stats_dtype), 1
    elif scheme == "token":
        g = group_size or d
        if d % g:
            raise UsageError(f"group_size {g} must divide head_dim {d} for per-token quantization")
        grouped = x.reshape(*x.shape[:-1], d // g, g)
        out, groups = _minmax(grouped, bits, (-1,), stats_dtype).reshape(x.shape), lead * n * (d // g)
    else:  # channel: groups of consecutive positions
        g = group_size or max(n, 1)
        parts = [_minmax(p, bits, (-2,), stats_dtype) for p in torch.split(x, g, dim=-2)] if n else [x]
        out, groups = torch.cat(parts, dim=-2), lead * d * math.ceil(n / g)
    stat_size = torch.tensor([], dtype=stats_dtype).element_size() if stats_dtype is not None else 4
    return Quantized(out, math.ceil(x.numel() * bits / 8), 2 * groups * stat_size, groups)


def quantize(x: torch.Tensor, bits: int, scheme: str, group_size: int | None = None) -> torch.Tensor:
    """The dequantized tensor (same shape and dtype as ``x``); see the module docstring for schemes.

    >>> quantize(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), 2, "tensor")
    tensor([[0., 1., 2., 3.]])
    """
    return quantize_with_stats(x, bits, scheme, group_size).tensor


# ----------------------------------------------------------------------------- KIVI

_SPEC = re.compile(r"^K(\d+)V(\d+)(?:[-_]?G(\d+))?(?:[-_]?R(\d+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class KiviSpec:
    """``K{key_bits}V{value_bits}[G{group_size}][R{residual}]``, e.g. ``K4V2``, ``K2V2G32R64``.

    ``residual`` = KIVI's ``residual_length`` R (default 128, as in the paper's code; ``R0`` = none):
    of a prompt of T tokens, keys keep the last ``T mod R`` tokens in full precision (keys are
    quantized per-channel in whole blocks of R tokens) and values the last ``min(T, R)``.
    """

    key_bits: int
    value_bits: int
    group_size: int = 32
    residual: int = 128

    @property
    def label(self) -> str:
        return f"K{self.key_bits}V{self.value_bits}G{self.group_size}R{self.residual}"

    def full_precision(self, n: int) -> tuple[int, int]:
        """Tokens kept in full precision out of ``n``: ``(keys, values)`` = ``(n mod R, min(n, R))``."""
        if self.residual == 0:
            return 0, 0
        return n % self.residual, min(n, self.residual)


def parse_spec(spec: str) -> KiviSpec:
    """Parse a ``--quantize`` spec; raise a one-line ``UsageError`` when it cannot be parsed."""
    m = _SPEC.match((spec or "").strip())
    if not m:
        raise UsageError(
            f"cannot parse quantize spec {spec!r}: expected K<bits>V<bits>[G<group>][R<residual>], "
            "e.g. K4V2, K2V2G32 or K2V2G32R64 (bits 1..8, residual default 128, R0 = none)"
        )
    kb, vb = int(m.group(1)), int(m.group(2))
    group = int(m.group(3)) if m.group(3) else 32
    if not (1 <= kb <= 8 and 1 <= vb <= 8):
        raise UsageError(f"quantize spec {spec!r}: bits must be in 1..8")
    if group < 1:
        raise UsageError(f"quantize spec {spec!r}: group size must be at least 1")
    return KiviSpec(kb, vb, group, int(m.group(4)) if m.group(4) else 128)


@dataclass
class KiviLayer:
    """One layer after KIVI: dequantized ``keys``/``values`` (input shape and dtype) and their size.

    ``nbytes``: codes + scales/zeros + the full-precision tokens at the input's dtype; ``nbytes_fp16``:
    the same with the full-precision tokens stored in float16 (what a float16 deployment holds).
    """

    keys: torch.Tensor
    values: torch.Tensor
    nbytes: int
    nbytes_fp16: int


def kivi_layer(
    keys: torch.Tensor, values: torch.Tensor, spec: KiviSpec, stats_dtype: torch.dtype = torch.float16
) -> KiviLayer:
    """KIVI fake-quantization of one layer's ``keys``/``values`` ``[..., position, head_dim]``.

    Keys: per-channel, groups of ``spec.group_size`` positions. Values: per-token, groups of
    ``spec.group_size`` channels (the whole head_dim when it does not divide it). The full-precision
    residual follows ``spec.full_precision``: keys keep the last ``T mod R`` tokens, values the last
    ``min(T, R)``. Scales and zeros are stored (and used) in ``stats_dtype``.
    """
    n = keys.shape[-2]
    k_full, v_full = spec.full_precision(n)
    d = values.shape[-1]
    vgroup = spec.group_size if d % spec.group_size == 0 else None
    kq = quantize_with_stats(keys[..., : n - k_full, :], spec.key_bits, "channel", spec.group_size, stats_dtype)
    vq = quantize_with_stats(values[..., : n - v_full, :], spec.value_bits, "token", vgroup, stats_dtype)
    full = keys[..., n - k_full :, :].numel() + values[..., n - v_full :, :].numel()
    packed = kq.nbytes + vq.nbytes
    return KiviLayer(
        torch.cat([kq.tensor, keys[..., n - k_full :, :]], dim=-2),
        torch.cat([vq.tensor, values[..., n - v_full :, :]], dim=-2),
        packed + full * keys.element_size(),
        packed + full * 2,
    )


def kivi(
    keys: torch.Tensor, values: torch.Tensor, spec: KiviSpec, stats_dtype: torch.dtype = torch.float16
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(keys, values, bytes)`` of :func:`kivi_layer` (bytes with the full-precision tokens at the
    input's dtype)."""
    out = kivi_layer(keys, values, spec, stats_dtype)
    return out.keys, out.values, out.nbytes
