"""What the view page shows of a snapshot: tokens, per-cell quantities and every strategy's kept sets.

Shapes: a cell is one ``(layer, kv_head, position)``; per-cell arrays are flattened row-major from
``[layer, kv_head, position]`` (``cell = (layer * kv_heads + kv_head) * n + position``).

Kept sets come from the Python engine itself (``Strategy.keep``), evaluated at every slider stop
``ratio = g * step`` (``g = 0 .. stops - 1``), so the page never re-implements a strategy's budget rule
or selection and shows exactly what ``kvscope prune``/``bench`` would evict at those ratios. They are
stored per cell as ``until``: the first stop at which the cell is evicted when its kept stops are
``0 .. until - 1`` (every strategy whose kept sets shrink as the ratio grows), plus ``flips``: for each
stop, the cells whose kept state differs from that rule (strategies whose selection changes regime,
e.g. SnapKV when the budget falls below its window). The decoding is exact, with no rounding.

Quantities (attention received per seeing query, ``||k||``, ``||v||``) are for shading and hover: each
(layer, kv_head) row is quantized to 8 bits between its own minimum and maximum (``lo``/``hi``), so a
shown value is within ``(hi - lo) / 510`` of the snapshot's. Averages over rows are exported in full.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kvscope.errors import UsageError
from kvscope.snapshot import KVSnapshot
from kvscope.view.settings import ViewSettings

DEFAULT_STEP = ViewSettings.step  # the default lives in ViewSettings
MAX_RATIO = 0.95
QUANTITIES = {  # name -> label shown on the page
    "attention": "attention received (mean per seeing query)",
    "knorm": "||k|| (key L2 norm)",
    "vnorm": "||v|| (value L2 norm)",
}


def b64(array: np.ndarray) -> str:
    """Little-endian bytes of ``array`` as base64 (decoded in the page into a typed array)."""
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def stops(step: float) -> list[float]:
    """The slider's ratios: ``0, step, 2 step, ...`` up to ``MAX_RATIO``, rounded to 6 decimals."""
    if not 0.001 <= step <= 0.5:
        raise UsageError(f"step must be between 0.001 and 0.5, got {step:g}")
    count = int(round(MAX_RATIO / step, 9)) + 1
    if count > 255:
        raise UsageError(f"step {step:g} makes {count} slider stops; at most 255")
    return [round(g * step, 6) for g in range(count) if g * step <= MAX_RATIO + 1e-9]


def check_snapshot(snap: KVSnapshot) -> None:
    """One-line ``UsageError`` when the page cannot be built from ``snap``."""
    if not snap.has_attention or snap.attention_counts is None:
        raise UsageError(
            "the snapshot has no attention data: capture it with attention and queries "
            "(ks.capture(..., attention=True, queries=True))"
        )
    if len({k.shape[1] for k in snap.keys}) != 1 or snap.keys[0].shape[1] != snap.n_positions:
        raise UsageError("the snapshot's layers hold different numbers of positions (sliding window): not supported")


def quantize_rows(values: torch.Tensor) -> dict[str, Any]:
    """``[layer, kv_head, n]`` -> 8-bit codes per row with each row's ``lo``/``hi`` (floats)."""
    v = values.double().reshape(-1, values.shape[-1]).nan_to_num()
    lo, hi = v.min(dim=1).values, v.max(dim=1).values
    span = (hi - lo).clamp(min=1e-30)
    codes = ((v - lo[:, None]) / span[:, None] * 255).round().clamp(0, 255).to(torch.uint8)
    return {
        "codes": b64(codes.numpy().ravel()),
        "lo": [float(f"{x:.6g}") for x in lo.tolist()],
        "hi": [float(f"{x:.6g}") for x in hi.tolist()],
        "mean": [float(f"{x:.5g}") for x in values.double().mean(dim=(0, 1)).nan_to_num().tolist()],
    }


def quantities(snap: KVSnapshot) -> dict[str, dict[str, Any]]:
    """Each quantity of ``QUANTITIES``, quantized by :func:`quantize_rows`."""
    tensors = {
        "attention": snap.mean_attention(),
        "knorm": torch.stack([k.double().norm(dim=-1) for k in snap.keys]),
        "vnorm": torch.stack([v.double().norm(dim=-1) for v in snap.values]),
    }
    return {name: {"label": QUANTITIES[name], **quantize_rows(t)} for name, t in tensors.items()}


def encode_kept(masks: list[torch.Tensor]) -> dict[str, Any]:
    """Per-stop keep plans (bool ``[layer, kv_head, n]`` each) -> ``until`` (uint8 per position of each
    distinct row, ``[rows, n]``), ``rowOf`` (row of each (layer, kv_head): identical rows are stored once,
    e.g. StreamingLLM's), ``flips`` (per stop, the cells whose state differs from ``g < until``) and
    ``kept`` (count per stop)."""
    m = torch.stack([x.reshape(-1) for x in masks]).numpy()  # [stops, cells]
    leading = np.cumprod(m, axis=0).sum(axis=0).astype(np.uint8)  # kept at stops 0 .. until-1
    predicted = np.arange(m.shape[0])[:, None] < leading[None, :]
    flips = [np.flatnonzero(m[g] != predicted[g]).astype(np.uint32) for g in range(m.shape[0])]
    unique, row_of = np.unique(leading.reshape(-1, masks[0].shape[-1]), axis=0, return_inverse=True)
    return {
        "until": b64(unique.ravel()),
        "rowOf": [int(x) for x in row_of.ravel()],
        "flips": [b64(f) if f.size else "" for f in flips],
        "flipCount": int(sum(f.size for f in flips)),
        "kept": [int(x) for x in m.sum(axis=1)],
    }


@contextlib.contextmanager
def reused_attention() -> Iterator[None]:
    """Within the block, strategies that call ``last_query_probs`` on the same tensors get the first
    result again (the kept sets are computed at every stop from the same snapshot: same numbers, ~20x
    faster for TOVA and the SnapKV family). A strategy that reaches attention another way is only
    slower, never different: nothing else is patched."""
    import sys

    from kvscope.attention import last_query_probs

    memo: dict[tuple, torch.Tensor] = {}

    def reused(q, key, scaling, window, *args, **kw):
        tag = (id(q), id(key), scaling, window, args, tuple(sorted(kw.items())))
        if tag not in memo:
            memo[tag] = last_query_probs(q, key, scaling, window, *args, **kw)
        return memo[tag].clone()

    modules = [m for n, m in list(sys.modules.items()) if n.startswith("kvscope.prune.strategies")]
    patched = [m for m in modules if getattr(m, "last_query_probs", None) is last_query_probs]
    for m in patched:
        m.last_query_probs = reused
    try:
        yield
    finally:
        for m in patched:
            m.last_query_probs = last_query_probs


def snapshot_prefill(snap: KVSnapshot):
    """A ``Prefill`` over ``snap`` for the strategies (no model: scaling ``head_dim ** -0.5`` unless the
    snapshot's meta records ``scaling`` per layer)."""
    from kvscope.prune.evict import Prefill

    scaling = snap.meta.get("scaling") or [snap.info.head_dim**-0.5] * snap.n_layers
    return Prefill(snap.token_ids[None], [], [], snap, 0.0, [float(s) for s in scaling])


def strategy_entry(name: str, pre, ratios: list[float]) -> dict[str, Any]:
    """One registered strategy at its default settings: kept sets at every stop, or why it cannot run."""
    from kvscope.prune.strategies import STRATEGIES, make_strategy

    s = make_strategy(name)
    entry: dict[str, Any] = {"name": name, "label": s.label, "summary": STRATEGIES[name].summary}
    entry["settings"] = s.settings()
    try:
        with reused_attention():
            masks = [s.keep(pre, r) for r in ratios]
    except UsageError as exc:
        return {**entry, "unavailable": str(exc)}
    layers = pre.snapshot.n_layers
    entry["warnings"] = {f"{r:g}": s.warnings(pre.n_positions, r, layers) for r in ratios}
    entry["warnings"] = {k: v for k, v in entry["warnings"].items() if v}
    return {**entry, **encode_kept(masks)}


def snapshot_data(
    snap: KVSnapshot, strategies: list[str] | None = None, step: float = DEFAULT_STEP, source: str = ""
) -> dict[str, Any]:
    """The page's data for a snapshot (a JSON-ready dict; see the module doc for the encodings)."""
    from kvscope.analyze.sinks import detect_sinks
    from kvscope.models import dtype_bytes
    from kvscope.prune.strategies import STRATEGIES

    check_snapshot(snap)
    names = list(STRATEGIES) if strategies is None else list(strategies)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise UsageError(f"unknown strategy {', '.join(unknown) or '(none)'}: use some of {', '.join(STRATEGIES)}")
    ratios = stops(step)
    pre = snapshot_prefill(snap)
    info = snap.info
    return {
        "kind": "snapshot",
        "source": source,
        "model": {"name": info.name, "layers": snap.n_layers, "kv_heads": int(snap.keys[0].shape[0])},
        "head_dim": int(snap.keys[0].shape[-1]),
        "bytes_per_entry": 2 * int(snap.keys[0].shape[-1]) * dtype_bytes(info.dtype),
        "dtype": info.dtype,
        "n": snap.n_positions,
        "tokens": list(snap.tokens),
        "special": [int(x) for x in snap.special.tolist()],
        "sinks": [int(p) for p in detect_sinks(snap).positions],
        "ratios": ratios,
        "quantities": quantities(snap),
        "strategies": [strategy_entry(n, pre, ratios) for n in names],
    }
