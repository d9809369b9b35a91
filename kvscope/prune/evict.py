"""Eviction mechanics: prefill a prompt once, then build pruned copies of its cache and score a
continuation against them.

Shapes: a keep plan is bool ``[layer, kv_head, position]`` over the prompt (True = kept). Live
cache tensors are ``[1, kv_head, slot, head_dim]`` in the model's dtype. After eviction a layer
holds fewer slots than the prompt has tokens, so the continuation always gets explicit
``position_ids`` starting at the prompt length: its positions do not change when tokens are evicted.

Sliding-window layers (Mistral, Gemma 2/3's alternate layers): the prefill keeps every position of
every layer so that strategies score all of them, and ``build_cache`` then cuts a windowed layer to
what the model's own cache holds (its last ``window - 1`` positions, ``Prefill.held``) before applying
the plan there: eviction inside the window, bytes counted for what the cache holds.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.capture.capturing import run_capture
from kvscope.compat import cache_keyword, forward
from kvscope.errors import UsageError
from kvscope.hfcache import cache_from_tensors
from kvscope.models import ModelInfo
from kvscope.prune.evict_attention import evicting
from kvscope.quant import KiviSpec, kivi_layer
from kvscope.snapshot import KVSnapshot


@dataclass
class Prefill:
    """The prompt, prefilled once. ``keys``/``values``: per layer ``[1, kv_head, P, head_dim]`` in the
    model's dtype; ``snapshot``: float32 copies with attention received and post-RoPE queries."""

    prompt_ids: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    snapshot: KVSnapshot
    seconds: float
    scaling: list[float] = field(default_factory=list)
    forward_passes: int = 1  # prefill forwards counted while building it (count_forwards)
    held: list[int] = field(default_factory=list)  # [layer] positions the model's cache holds (window)
    softcap: float | None = None  # the model's logit soft-capping (Gemma 2), None without
    windows: list[int | None] = field(default_factory=list)  # [layer] sliding window, None = full attention

    @property
    def n_positions(self) -> int:
        return int(self.prompt_ids.shape[1])


@dataclass
class PrunedCache:
    """A live cache plus the per-layer keep masks still to apply (layers whose heads keep different
    numbers of tokens cannot be cut into one rectangular tensor, so they are masked instead).

    ``kv_bytes``: the kept entries (or KIVI's packed bytes) at the cache's dtype; ``kv_bytes_fp16``: the
    same stored in float16 (KIVI: its full-precision residual in float16); ``held_bytes``: the tensors
    this simulation actually allocates, larger than ``kv_bytes`` only for masked or fake-quantized layers.
    """

    cache: Any
    masks: dict[int, torch.Tensor]
    kv_bytes: int
    kept_entries: int
    held_bytes: int = 0
    kv_bytes_fp16: int = 0
    positions: dict[int, torch.Tensor] = field(default_factory=dict)  # windowed layers: [kv_head, slots]


@dataclass
class ForwardCount:
    """Forward passes of a model counted by :func:`count_forwards`: ``prefills`` started from no cache or an
    empty one at position 0 (a prompt processed from scratch), ``cached`` extended an existing cache;
    ``tokens``: the input tokens of every pass."""

    forwards: int = 0
    prefills: int = 0
    tokens: int = 0

    @property
    def cached(self) -> int:
        return self.forwards - self.prefills


@contextlib.contextmanager
def count_forwards(model: Any) -> Iterator[ForwardCount]:
    """Count ``model``'s forward calls inside the block with a forward pre-hook (removed on exit): the one
    forward counter of prune, bench and their benchmarks."""
    count = ForwardCount()
    key = cache_keyword(model)

    def hook(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get(key, kwargs.get("past_key_values"))
        pos = kwargs.get("position_ids")
        fresh = (cache is None or not cache.get_seq_length()) and (pos is None or int(pos.min()) == 0)
        count.forwards += 1
        count.prefills += int(fresh)
        count.tokens += int(ids.shape[-1]) if ids is not None else 0

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


def prefill(model: Any, tokenizer: Any, info: ModelInfo, prompt_ids: torch.Tensor) -> Prefill:
    """One forward pass over ``prompt_ids`` ``[1, P]`` recording attention received and queries (every
    layer keeps all ``P`` positions; ``held`` says how many the model's own cache would keep)."""
    from kvscope.archs import layer_attention

    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    with count_forwards(model) as count:
        snap = run_capture(
            model, prompt_ids, tokenizer, info=info, attention=True, queries=True, full_cache=True
        ).snapshot
    seconds = time.perf_counter() - t0
    keys = [k[None].to(device=device, dtype=dtype) for k in snap.keys]
    values = [v[None].to(device=device, dtype=dtype) for v in snap.values]
    layers = layer_attention(model)
    scaling = [a.scaling for a in layers]
    held = [a.held(int(prompt_ids.shape[1])) for a in layers]
    softcap = layers[0].softcap if layers else None
    windows = [a.window for a in layers]
    return Prefill(prompt_ids, keys, values, snap, seconds, scaling, count.prefills, held, softcap, windows)


ROUNDINGS = ("ceil", "floor")


def n_keep(n: int, ratio: float, rounding: str = "ceil") -> int:
    """Tokens kept when a fraction ``ratio`` of ``n`` is removed.

    ``"ceil"`` (default, never evicts more than asked): ``ceil((1 - ratio) * n)``, the product rounded to
    9 decimals first so that ``(1 - 0.7) * 10`` counts as 3. ``"floor"``: kvpress's own float64
    expression ``int(n * (1 - ratio))``, so the budgets match kvpress's to the token, including where
    floating point puts an integer product just below itself (490 tokens at 0.9: 48, not 49).
    """
    if rounding not in ROUNDINGS:
        raise UsageError(f"unknown budget rounding {rounding!r}: use ceil or floor")
    if rounding == "floor":
        return min(n, int(n * (1.0 - ratio)))
    return min(n, math.ceil(round((1.0 - ratio) * n, 9)))


def structural_keep(info: ModelInfo, n: int, layers: list[int] | None, heads: list[int] | None) -> torch.Tensor:
    """Keep plan ``[layer, kv_head, n]`` for layer/head pruning (all prompt positions evicted).

    ``layers`` alone: every kv_head of those layers; ``heads`` with ``layers``: those kv_heads in
    those layers; ``heads`` alone: those kv_heads in every layer.
    """
    keep = torch.ones(info.layers, info.kv_heads, n, dtype=torch.bool)
    rows = list(layers) if layers else list(range(info.layers))
    cols = list(heads) if heads else list(range(info.kv_heads))
    if not layers and not heads:
        return keep
    for layer in rows:
        keep[layer, cols] = False
    return keep


def gather_layer(k: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``k`` ``[1, kv_head, P, d]`` cut to the kept slots ``[1, kv_head, c, d]`` (same count per head)."""
    counts = keep.sum(-1)
    c = int(counts[0])
    idx = keep.nonzero()[:, 1].view(keep.shape[0], c).to(k.device)  # ascending positions per head
    return torch.gather(k, 2, idx[None, :, :, None].expand(1, keep.shape[0], c, k.shape[-1]))


def build_cache(
    config: Any, pre: Prefill, keep: torch.Tensor | None, mode: str = "auto", quant: KiviSpec | None = None
) -> PrunedCache:
    """A fresh live cache for ``pre`` with ``keep`` applied (``None`` = keep everything).

    ``mode``: ``"remove"`` gathers the kept slots (every head of a layer must keep the same count),
    ``"mask"`` keeps every slot and masks the evicted ones, ``"auto"`` removes where possible.
    ``kv_bytes`` = bytes of the kept entries (K and V), or KIVI's packed bytes with ``quant``.
    """
    if quant is not None and mode == "mask":
        raise UsageError("quantization needs the kept entries cut out (mode 'auto' or 'remove'), not masked")
    keys, values, masks, total, entries, fp16, positions = [], [], {}, 0, 0, 0, {}
    for layer, (k, v) in enumerate(zip(pre.keys, pre.values)):
        lk = keep[layer] if keep is not None else torch.ones(k.shape[1], k.shape[2], dtype=torch.bool)
        k, v, lk, pos = _held(pre, layer, k, v, lk)
        counts = lk.sum(-1)
        rect = bool((counts == counts[0]).all())
        if (mode == "remove" or quant is not None) and not rect:
            raise UsageError(
                f"layer {layer}: its kv_heads keep different numbers of tokens, so the layer can "
                "only be masked, not cut (and not quantized); drop quantize or heads",
                param="heads",
            )
        if mode != "mask" and rect:
            k, v = gather_layer(k, lk), gather_layer(v, lk)
            pos = None if pos is None else gather_layer(pos[None, :, :, None], lk)[0, :, :, 0]
        elif not bool(lk.all()):
            masks[layer] = lk.to(k.device)
        kept = int(lk.sum())
        entries += kept
        if quant is not None:
            layer_q = kivi_layer(k, v, quant)
            k, v = layer_q.keys, layer_q.values
            total, fp16 = total + layer_q.nbytes, fp16 + layer_q.nbytes_fp16
        else:
            total += 2 * kept * k.shape[-1] * k.element_size()
            fp16 += 2 * kept * k.shape[-1] * 2
        keys.append(k)
        values.append(v)
        if pos is not None:
            positions[layer] = pos
    held = sum(t.numel() * t.element_size() for t in keys + values)
    # every layer a plain growing layer: the window is applied by position in evict_attention
    cache = cache_from_tensors(None, keys, values)
    return PrunedCache(cache, masks, total, entries, held, fp16, positions)


def _held(pre: Prefill, layer: int, k: torch.Tensor, v: torch.Tensor, lk: torch.Tensor):
    """A windowed layer cut to the positions the model's cache holds (the last ``pre.held[layer]``):
    ``(k, v, keep, positions [kv_head, held])``; any other layer unchanged, with positions None."""
    n = k.shape[2]
    h = pre.held[layer] if pre.held else n
    if h >= n:
        return k, v, lk, None
    pos = torch.arange(n - h, n).expand(k.shape[1], h)
    return k[:, :, n - h :], v[:, :, n - h :], lk[:, n - h :], pos


def continuation_logits(model: Any, pc: PrunedCache, cont_ids: torch.Tensor, start: int, rows: int = 0) -> torch.Tensor:
    """Logits ``[C, vocab]`` (float32) of the continuation ``[1, C]`` at positions ``start ..``,
    attending to the pruned cache (extended in place by the continuation). ``rows`` > 0 computes only
    the last ``rows`` rows of the LM head (``[min(C, rows), vocab]``); 0 = every row."""
    device = next(model.parameters()).device
    pos = torch.arange(start, start + cont_ids.shape[1], device=device)[None]
    kw = {"logits_to_keep": rows} if rows else {}
    with torch.inference_mode(), evicting(model, pc.masks, pc.positions, start):
        out = forward(model, pc.cache, input_ids=cont_ids.to(device), position_ids=pos, use_cache=True, **kw)
    return out.logits[0].float()


def token_logliks(logits: torch.Tensor, cont_ids: torch.Tensor) -> torch.Tensor:
    """Log-probability ``[C - 1]`` of continuation tokens 1.. given the previous ones and the cache.

    Token 0 is predicted by the prompt's last position, computed before any pruning, so it is not
    scored: pruning cannot change it.
    """
    logp = torch.log_softmax(logits[:-1].double(), dim=-1)
    return logp.gather(1, cont_ids[0, 1:].to(logp.device)[:, None])[:, 0].cpu()


def perplexity(logliks: torch.Tensor) -> float:
    """``exp(-mean log p)`` over the scored continuation tokens."""
    return float(torch.exp(-logliks.mean()))


def decode(
    model: Any,
    pc: PrunedCache,
    first: int,
    start: int,
    steps: int,
    stop_ids: frozenset[int] = frozenset(),
    until: Callable[[list[int]], bool] | None = None,
) -> list[int]:
    """Greedy decoding of ``steps`` tokens against the pruned cache: ``first`` is fed at position ``start``
    (true positions, whatever the cache's slot count), through the package's one decode loop. Decoding
    stops after a token in ``stop_ids`` (kept as the last token; none by default, for timings) or once
    ``until(tokens decoded so far)`` is true."""
    from kvscope.decode import generate

    with torch.inference_mode(), evicting(model, pc.masks, pc.positions, start):
        out = generate(
            model,
            pc.cache,
            first_tokens=torch.tensor([[first]]),
            positions=torch.tensor([start]),
            max_new_tokens=steps,
            stop_ids=stop_ids,
            until=until,
        )
    return out.tokens[0]
