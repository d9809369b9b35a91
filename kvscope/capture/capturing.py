"""Capture a model's KV cache for a prompt into a ``KVSnapshot`` (the cache itself is read by ``kvscope.hfcache``).

One forward pass with a ``DynamicCache``. Keys and values are copied exactly as the model cached
them (post-RoPE) into float32 tensors ``[kv_head, position, head_dim]``; the live cache is never
aliased. Optional extras, each asked for by a flag:

- ``pre_rope``: keys before RoPE, from a forward hook on ``k_norm`` where the architecture has one
  (Qwen3, Gemma3), otherwise on ``k_proj``.
- ``queries``: per-layer post-RoPE query vectors ``[q_head, position, head_dim]``.
- ``attention``: attention *received* per key (the H2O accumulated-attention score, Zhang et al.,
  NeurIPS 2023), computed by ``kvscope.attention`` in bounded memory, layer by layer and in query
  chunks, while producing the usual attention output.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from kvscope import __version__
from kvscope.attention import AttentionRecorder, recording
from kvscope.compat import forward, output_cache
from kvscope.errors import UsageError
from kvscope.hfcache import attention_modules, cache_to_lists
from kvscope.models import ModelInfo, describe
from kvscope.snapshot import KVSnapshot

log = logging.getLogger("kvscope")


@dataclass
class CaptureResult:
    """A snapshot plus the forward pass's logits (``[position or 1, vocab]``, float32)."""

    snapshot: KVSnapshot
    logits: torch.Tensor


def encode_prompt(tokenizer: Any, text: str, max_positions: int, truncate: bool = False) -> torch.Tensor:
    """Token ids ``[1, P]`` for ``text``; refuse an empty prompt or one longer than ``max_positions``.

    With ``truncate`` a too-long prompt keeps its first ``max_positions`` tokens, with a warning.
    """
    if text is None or not text.strip():
        raise UsageError("the prompt is empty: give a text with some characters", param="prompt")
    ids = tokenizer(text, return_tensors="pt").input_ids
    n = ids.shape[1]
    if n == 0:
        raise UsageError("the prompt produced no tokens")
    if max_positions and n > max_positions:
        if not truncate:
            raise UsageError(
                f"the prompt has {n} tokens but the model takes at most {max_positions}; shorten it or pass truncate",
                param="truncate",
            )
        log.warning("prompt truncated from %d to %d tokens (the model's max positions)", n, max_positions)
        ids = ids[:, :max_positions]
    return ids


@contextlib.contextmanager
def pre_rope_hooks(model: Any, store: dict[int, torch.Tensor], kv_heads: int, head_dim: int) -> Iterator[None]:
    """Record each layer's pre-RoPE keys ``[kv_head, position, head_dim]`` into ``store``."""
    handles = []
    for attn in attention_modules(model):
        target = getattr(attn, "k_norm", None) or getattr(attn, "k_proj", None)
        if target is None:
            raise UsageError(
                f"{type(attn).__name__} computes keys in a fused projection (no k_proj or k_norm to hook): "
                "capture it without pre_rope"
            )

        def hook(_mod, _inp, out, layer=attn.layer_idx):
            x = out[0].detach().to(device="cpu", dtype=torch.float32, copy=True)
            store[layer] = x.reshape(x.shape[0], kv_heads, head_dim).transpose(0, 1).contiguous()

        handles.append(target.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def token_strings(tokenizer: Any, ids: list[int]) -> tuple[list[str], list[bool]]:
    """Decoded text of each token and whether it is a special token."""
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [tokenizer.decode([i]) for i in ids], [i in special_ids for i in ids]


def run_capture(
    model: Any,
    input_ids: torch.Tensor,
    tokenizer: Any,
    *,
    info: ModelInfo | None = None,
    attention: bool = False,
    pre_rope: bool = False,
    queries: bool = False,
    keep_logits: bool = False,
    text: str = "",
    query_chunk: int | None = None,
    full_cache: bool = False,
) -> CaptureResult:
    """One forward pass over ``input_ids`` ``[1, P]``; returns the snapshot and logits.

    ``logits`` is ``[P, vocab]`` with ``keep_logits`` and ``[1, vocab]`` (last position) otherwise.
    ``full_cache`` keeps every position in every layer, also where the model's cache keeps a sliding
    window (attention is unchanged: the window is in the mask), for the eviction engine.
    """
    from transformers import DynamicCache

    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise UsageError("capture takes one sequence: input_ids of shape [1, P]")
    info = info or describe(model)
    device = next(model.parameters()).device
    ids = input_ids.to(device)
    rec = AttentionRecorder(info.layers, want_attention=attention, want_queries=queries, chunk=query_chunk)
    pre: dict[int, torch.Tensor] = {}
    cache = DynamicCache() if full_cache else DynamicCache(config=model.config)
    hooks = pre_rope_hooks(model, pre, info.kv_heads, info.head_dim) if pre_rope else contextlib.nullcontext()
    with torch.inference_mode(), hooks, recording(model, rec if (attention or queries) else None):
        out = forward(model, cache, input_ids=ids, use_cache=True, logits_to_keep=0 if keep_logits else 1)
    snap = _build_snapshot(output_cache(out), ids[0].tolist(), tokenizer, info, rec, pre, text)
    return CaptureResult(snap, out.logits[0].detach().to(device="cpu", dtype=torch.float32, copy=True))


def _build_snapshot(
    cache: Any,
    ids: list[int],
    tokenizer: Any,
    info: ModelInfo,
    rec: AttentionRecorder,
    pre: dict[int, torch.Tensor],
    text: str,
) -> KVSnapshot:
    keys, values = cache_to_lists(cache, info.layers)
    tokens, special = token_strings(tokenizer, ids)
    return KVSnapshot(
        keys=keys,
        values=values,
        token_ids=torch.tensor(ids, dtype=torch.int64),
        tokens=tokens,
        special=torch.tensor(special, dtype=torch.bool),
        positions=torch.arange(len(ids), dtype=torch.int64),
        info=info,
        text=text,
        pre_rope_keys=[pre[i] for i in range(info.layers)] if pre else None,
        queries=rec.query_list(),
        attention_received=rec.received_tensor(),
        attention_counts=rec.counts_tensor(),
        meta={"kvscope_version": __version__},
    )


def capture(
    model: Any,
    tokenizer: Any,
    text: Any,
    *,
    info: ModelInfo | None = None,
    attention: bool = False,
    pre_rope: bool = False,
    queries: bool = False,
    truncate: bool = False,
) -> KVSnapshot | list[KVSnapshot]:
    """Run one forward pass over ``text`` and return its ``KVSnapshot``.

    ``text`` may be a string, token ids (a list of ints, an int tensor ``[P]``), a ``BatchEncoding``,
    chat messages (``[{"role": ..., "content": ...}]``, through the tokenizer's chat template) or a
    transformers ``Cache`` (snapshotted as it is: no forward pass, token ids unknown). A batch (a list of
    strings, ids ``[B, P]``, a ``BatchEncoding`` of several rows) gives a list of snapshots, one forward
    pass per row (padding dropped). Anything else is a ``TypeError`` naming these.

    >>> from kvscope.models import load_model
    >>> model, tok, info = load_model("tiny")
    >>> snap = capture(model, tok, "Hello", info=info, attention=True)
    >>> snap.keys[0].shape  # [kv_head, position, head_dim]
    torch.Size([2, 5, 16])
    """
    from kvscope.capture.inputs import is_batch, is_cache, rows
    from kvscope.errors import expect_model

    expect_model(model, tokenizer)
    info = info or describe(model)
    if is_cache(text):
        return snapshot_cache(text, info)
    snaps = []
    for ids, words in rows(tokenizer, text):
        if ids is None:
            ids = encode_prompt(tokenizer, words, info.max_positions, truncate)
        elif ids.shape[1] == 0:
            raise UsageError("the prompt produced no tokens")
        res = run_capture(
            model, ids, tokenizer, info=info, attention=attention, pre_rope=pre_rope, queries=queries, text=words
        )
        snaps.append(res.snapshot)
    return snaps if is_batch(text) else snaps[0]


def snapshot_cache(cache: Any, info: ModelInfo) -> KVSnapshot:
    """A ``KVSnapshot`` of an existing cache (batch row 0), as it holds it; the token ids are not in a
    cache, so they are recorded as 0 with empty token strings and ``meta["tokens"] = "unknown"``."""
    keys, values = cache_to_lists(cache, info.layers)
    n = max(k.shape[1] for k in keys)
    return KVSnapshot(
        keys=keys,
        values=values,
        token_ids=torch.zeros(n, dtype=torch.int64),
        tokens=[""] * n,
        special=torch.zeros(n, dtype=torch.bool),
        positions=torch.arange(n, dtype=torch.int64),
        info=info,
        meta={"kvscope_version": __version__, "tokens": "unknown (a snapshot of an existing cache)"},
    )
