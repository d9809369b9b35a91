"""Attention over KV tensors: the one causal GQA helper, and a recording attention function.

:func:`causal_attention` is kvscope's single implementation of causal grouped-query attention over
snapshot-layout tensors (queries ``[q_head, position, head_dim]``, keys/values ``[kv_head, position,
head_dim]``), with the model's own scaling (its attention modules' ``scaling``). Every analysis, strategy
and check that recomputes attention calls it.

The rest of the module is a recording attention function: the model's usual attention output, plus what we measure.

Registered with transformers' ``AttentionInterface`` under ``"kvscope_capture"`` (once, on first
use, never at import). While a ``recording(model, recorder)`` block is active, every attention call
is computed in query chunks so that no full ``[q_head, query, key]`` map is ever held. Memory is
bounded by ``chunk x q_heads x keys`` floats per layer, whatever the number of layers. For each
layer it accumulates:

- ``received[kv_head, key]``: the summed softmax probability that every query position of every
  q_head in that kv_head's group gives the key (H2O's accumulated attention, Zhang et al. 2023);
- ``counts[key]``: how many (q_head, query position) pairs could see the key (the mask allows it);
- optionally the post-RoPE queries ``[q_head, query, head_dim]``.

GQA mapping: q_head ``h`` reads kv_head ``h // group`` (``group = q_heads // kv_heads``), the same
grouping as transformers' ``repeat_kv``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch

from kvscope.attention_interface import interface_args, interface_output, register_attention, routed

NAME = "kvscope_capture"
SCORE_BUDGET = 1 << 25  # floats in one chunk of attention scores (128 MiB in float32)
KEY_BLOCK = 512  # keys per tile of the capture's column-sum pass (see _received_from_lse)
_ACTIVE: contextvars.ContextVar[AttentionRecorder | None] = contextvars.ContextVar("kvscope_rec", default=None)


class AttentionRecorder:
    """Per-layer accumulators filled by the recording attention function."""

    def __init__(
        self, n_layers: int, want_attention: bool = True, want_queries: bool = False, chunk: int | None = None
    ) -> None:
        self.n_layers = n_layers
        self.want_attention = want_attention
        self.want_queries = want_queries
        self.chunk = chunk
        self.received: dict[int, torch.Tensor] = {}
        self.counts: dict[int, torch.Tensor] = {}
        self.queries: dict[int, torch.Tensor] = {}

    def add(self, layer: int, received: torch.Tensor, counts: torch.Tensor) -> None:
        """Add one call's ``received [kv_head, key]`` and ``counts [key]`` for ``layer``."""
        if layer in self.received and self.received[layer].shape == received.shape:
            self.received[layer] += received
            self.counts[layer] += counts
        else:
            self.received[layer], self.counts[layer] = received, counts

    def received_tensor(self) -> torch.Tensor | None:
        """``[layer, kv_head, key]`` float32, or None when attention was not recorded."""
        if not self.want_attention or len(self.received) != self.n_layers:
            return None
        return torch.stack([self.received[i] for i in range(self.n_layers)])

    def counts_tensor(self) -> torch.Tensor | None:
        """``[layer, key]`` int64: (q_head, query) pairs that could see each key."""
        if not self.want_attention or len(self.counts) != self.n_layers:
            return None
        return torch.stack([self.counts[i] for i in range(self.n_layers)]).round().to(torch.int64)

    def query_list(self) -> list[torch.Tensor] | None:
        if not self.want_queries or len(self.queries) != self.n_layers:
            return None
        return [self.queries[i] for i in range(self.n_layers)]


def causal_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor | None,
    scaling: float,
    *,
    q_positions: torch.Tensor | None = None,
    k_positions: torch.Tensor | None = None,
    softcap: float | None = None,
    window: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Causal GQA attention: ``softmax(q k^T * scaling + causal mask) v``, computed in ``dtype``.

    ``queries`` ``[q_head, Q, head_dim]``; ``keys`` and ``values`` ``[kv_head, K, head_dim]`` (``values`` may
    be None when only the probabilities are wanted). q_head ``h`` reads kv_head ``h // (q_heads // kv_heads)``
    (transformers' ``repeat_kv``). A query at position ``p`` sees the keys at positions ``<= p``; positions
    default to ``0..K-1`` for the keys and the last ``Q`` of them for the queries, so a chunk of queries
    (or keys that survived an eviction) is passed with its ``q_positions`` ``[Q]`` / ``k_positions`` ``[K]``.
    ``scaling`` is the model's (its attention module's ``scaling``), ``head_dim ** -0.5`` only where it uses that;
    ``softcap`` its logit soft-capping (``tanh(s / c) * c``, Gemma 2) when it has one; ``window`` a sliding
    window (a query at ``p`` then sees keys at ``p - window < j <= p``, Mistral, Gemma 2/3's alternate layers).

    Returns ``(out [q_head, Q, head_dim] or None, probs [q_head, Q, K])`` in ``dtype`` (float64 by default, a
    reference; pass ``torch.float32`` for speed). A query that sees no key gets a zero row.
    """
    hq, hkv = queries.shape[0], keys.shape[0]
    if hq % hkv:
        raise ValueError(f"{hq} query heads cannot share {hkv} kv_heads evenly")
    kpos = torch.arange(keys.shape[1]) if k_positions is None else k_positions.cpu()
    qpos = kpos[-queries.shape[1] :] if q_positions is None else q_positions.cpu()
    kv_of = torch.arange(hq, device=keys.device) // (hq // hkv)
    scores = torch.einsum("hqd,hkd->hqk", queries.to(dtype), keys.to(dtype)[kv_of]) * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    hidden = kpos[None, :] > qpos[:, None]
    if window:
        hidden |= kpos[None, :] <= qpos[:, None] - window
    hidden = hidden.to(scores.device)
    probs = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1).nan_to_num_(0.0)
    out = None if values is None else torch.einsum("hqk,hkd->hqd", probs, values.to(dtype)[kv_of])
    return out, probs


def softcapped_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor | None,
    scaling: float,
    softcap: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(tanh(q k^T s / c) c, hidden keys -inf) v`` as Gemma 2 computes it (``softcap`` None: no cap).

    ``query`` ``[b, q_head, q, d]``, ``key``/``value`` ``[b, kv_head, k, d]`` (GQA: q_head ``h`` reads kv_head
    ``h // group``), ``allowed`` bool broadcastable to ``[b, q_head, q, k]`` (True = visible) or None.
    Returns ``(out [b, q_head, q, d] in value's dtype, probs [b, q_head, q, k] float32)``; a query that sees
    no key gets a zero row.
    """
    b, hq, q, d = query.shape
    kv = key.shape[1]  # each kv_head's group of q_heads as rows of one matmul (no copies of K and V)
    grouped = query.reshape(b, kv, hq // kv * q, d)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).view(b, hq, q, -1).float() * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num_(0.0)
    out = torch.matmul(probs.to(value.dtype).view(b, kv, hq // kv * q, -1), value)
    return out.view(b, hq, q, value.shape[-1]), probs


def _allowed(mask: torch.Tensor | None, s: int, e: int, kend: int, offset: int, device) -> torch.Tensor:
    """Bool ``[q, kend]`` (or ``[b, 1|h, q, kend]`` from a given mask): which keys each query sees."""
    if mask is None:  # plain causal: query i sits at absolute slot offset + i
        q_pos = torch.arange(s, e, device=device).unsqueeze(1) + offset
        return torch.arange(kend, device=device).unsqueeze(0) <= q_pos
    m = mask[..., s:e, :kend]
    if m.dtype == torch.bool:
        return m
    return m > torch.finfo(m.dtype).min / 2  # additive float mask: 0 = visible, very negative = hidden


def chunked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    softcap: float | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal GQA attention plus what each key receives. Shapes: query ``[b, q_head, q, d]``,
    key/value ``[b, kv_head, k, d]``; returns output ``[b, q_head, q, d_v]``, received
    ``[kv_head, k]`` and counts ``[k]`` (float32, batch row 0).

    A plain causal prefill on CPU takes the fast path: PyTorch's fused flash kernel gives the output
    (bit-identical to the model's sdpa path) and each row's log-sum-exp, then one extra Q·Kᵀ pass
    per query chunk turns ``exp(score - lse)`` into column sums (:func:`_received_from_lse`). Anything
    else (a cache offset, a padding or sliding-window mask, soft-capping, GPU) takes the general
    chunked softmax.
    """
    fast = (
        mask is None
        and softcap is None
        and query.shape[2] == key.shape[2]
        and query.device.type == "cpu"
        and query.dtype == torch.float32
        and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    )
    if fast:
        return _prefill_flash(query, key, value, scaling, chunk)
    return _chunked_softmax(query, key, value, mask, scaling, softcap, chunk)


def _prefill_flash(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float, chunk: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, hq, n, d = query.shape
    g = hq // key.shape[1]
    k_rep, v_rep = (key.repeat_interleave(g, 1), value.repeat_interleave(g, 1)) if g > 1 else (key, value)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, k_rep, v_rep, 0.0, True, attn_mask=None, scale=scaling
    )[:2]
    del k_rep, v_rep
    received = _received_from_lse(query[0], key[0], lse[0], scaling, chunk or 64)
    counts = (n - torch.arange(n, device=query.device, dtype=torch.float32)) * g
    return out, received, counts


def _received_from_lse(
    query: torch.Tensor, key: torch.Tensor, lse: torch.Tensor, scaling: float, chunk: int
) -> torch.Tensor:
    """``received [kv_head, key]``: the column sums of ``exp(q k^T * scaling - lse)`` under the causal mask.

    ``query`` ``[q_head, n, d]``, ``key`` ``[kv_head, n, d]``, ``lse`` ``[q_head, n]`` (each row's log-sum-exp,
    from the flash kernel). Rows are laid out (position, group) so a chunk of ``chunk`` positions is one
    contiguous ``[chunk * group, d]`` block per kv_head. Each chunk's scores are made a tile of keys at a time
    (:func:`_key_tiles`) in one reused buffer, so a tile stays in cache and no tile allocates: the ``- lse``
    shift plus a plain ``d``-wide matmul (one ``baddbmm``), the mask of the queries' own block, ``exp`` and a
    column sum, in place. The tiles are wide enough for the matrix kernels to give the untiled pass's sums
    bit for bit (checked on the embedded model by ``benchmarks/capture_ab.py``; the unit tests hold the sums
    to a float64 reference).
    """
    hq, n, d = query.shape
    hkv, g, chunk = key.shape[0], hq // key.shape[0], max(1, min(chunk, n))
    rows = (query * scaling).view(hkv, g, n, d).transpose(1, 2).reshape(hkv, n * g, d)
    shift = lse.neg().view(hkv, g, n).transpose(1, 2).reshape(hkv, n * g, 1)
    keys_t = key.transpose(-1, -2)  # [kv_head, d, n]
    upper = torch.ones(chunk, chunk, dtype=torch.bool, device=query.device).triu(1)[:, None, :]  # [q, 1, k]
    received = torch.zeros(hkv, n, dtype=torch.float32, device=query.device)
    widest = min(n, 2 * KEY_BLOCK + chunk)  # no tile is wider (see _key_tiles)
    tile = torch.empty(hkv * chunk * g * widest, dtype=rows.dtype, device=query.device)
    sums = torch.empty(hkv * widest, dtype=torch.float32, device=query.device)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        for b0, b1 in _key_tiles(s, e):
            p = tile[: hkv * (e - s) * g * (b1 - b0)].view(hkv, (e - s) * g, b1 - b0)
            torch.baddbmm(
                shift[:, s * g : e * g].expand(-1, -1, b1 - b0), rows[:, s * g : e * g], keys_t[..., b0:b1], out=p
            )
            if b1 == e:  # the tile that holds the queries' own positions: none sees a later key
                p.view(hkv, e - s, g, b1 - b0)[..., s - b0 :].masked_fill_(upper[: e - s, :, : e - s], float("-inf"))
            received[:, b0:b1] += torch.sum(p.exp_(), dim=1, out=sums[: hkv * (b1 - b0)].view(hkv, b1 - b0))
    return received


def _key_tiles(s: int, e: int) -> list[tuple[int, int]]:
    """Key ranges ``[b0, b1)`` covering ``[0, e)`` for the queries at positions ``[s, e)``.

    Whole ``KEY_BLOCK``s, then one last tile from the last block start at or before ``s`` to ``e``, reaching
    one block further back when it would be narrower than ``KEY_BLOCK // 8`` keys: the matrix kernels sum a
    very narrow product (one column, say) in another order than a wide one.
    """
    last = s - s % KEY_BLOCK
    if last and e - last < KEY_BLOCK // 8:
        last -= KEY_BLOCK
    return [*((b, b + KEY_BLOCK) for b in range(0, last, KEY_BLOCK)), (last, e)]


def _chunked_softmax(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    softcap: float | None,
    chunk: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, hq, q, d = query.shape
    hkv, k = key.shape[1], key.shape[2]
    g = hq // hkv
    offset = k - q
    chunk = chunk or max(1, min(q, SCORE_BUDGET // max(1, hq * k)))
    out = torch.empty(b, hq, q, value.shape[-1], dtype=value.dtype, device=value.device)
    received = torch.zeros(hkv, k, dtype=torch.float32, device=query.device)
    counts = torch.zeros(k, dtype=torch.float32, device=query.device)
    qg = query.view(b, hkv, g, q, d)
    for s in range(0, q, chunk):
        e = min(q, s + chunk)
        kend = min(k, offset + e) if mask is None else k
        qs = qg[:, :, :, s:e].reshape(b, hkv, g * (e - s), d)
        scores = torch.matmul(qs, key[:, :, :kend].transpose(-1, -2)).float().mul_(scaling)
        scores = scores.view(b, hkv, g, e - s, kend)
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        allowed = _allowed(mask, s, e, kend, offset, query.device)
        allowed = allowed.reshape(allowed.shape[0] if allowed.ndim == 4 else 1, 1, 1, e - s, kend)
        probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num_(0.0)
        received[:, :kend] += probs[0].sum(dim=(1, 2))
        counts[:kend] += allowed[0, 0, 0].sum(dim=0).float() * g  # visible queries x q_heads per group
        pv = torch.matmul(probs.view(b, hkv, g * (e - s), kend).to(value.dtype), value[:, :, :kend])
        out[:, :, s:e] = pv.view(b, hkv, g, e - s, -1).reshape(b, hq, e - s, -1)
    return out, received, counts


def _recording_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The ``AttentionInterface`` entry point; returns ``([b, q, q_head, d_v], None)`` like eager."""
    rec = _ACTIVE.get()
    call = interface_args("kvscope's recorder", query, scaling, kwargs)
    if rec is not None and rec.want_queries:
        rec.queries[module.layer_idx] = query[0].detach().to(device="cpu", dtype=torch.float32, copy=True)
    out, received, counts = chunked_attention(
        query, key, value, attention_mask, call.scaling, call.softcap, rec.chunk if rec else None
    )
    if rec is not None and rec.want_attention:
        rec.add(module.layer_idx, received.cpu(), counts.cpu())
    return interface_output(out)


def register() -> None:
    """Register the recording attention with a boolean (sdpa-style) mask builder."""
    from transformers.masking_utils import sdpa_mask

    register_attention(NAME, _recording_attention, sdpa_mask)


@contextlib.contextmanager
def recording(model: Any, recorder: AttentionRecorder | None) -> Iterator[AttentionRecorder | None]:
    """Route ``model``'s attention through the recorder for the duration of the block.

    With ``recorder=None`` this does nothing. The model's previous attention implementation is
    restored on exit, even after an exception.
    """
    if recorder is None:
        yield None
        return
    register()
    token = _ACTIVE.set(recorder)
    try:
        with routed(model, NAME):
            yield recorder
    finally:
        _ACTIVE.reset(token)


def causal_visible(q: int, k: int, device: Any = None) -> torch.Tensor:
    """Bool ``[q, k]``: the ``q`` queries are the last ``q`` of ``k`` positions ("bottom-right" causal
    alignment), so query ``i`` sees keys ``0 .. k - q + i``."""
    return torch.arange(k, device=device)[None, :] <= torch.arange(q, device=device)[:, None] + (k - q)


def last_query_probs(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scaling: float,
    w: int,
    softcap: float | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Probabilities of the last ``w`` queries (:func:`causal_attention`, float64), grouped by kv_head.

    ``queries`` ``[q_head, position, head_dim]`` (post-RoPE), ``keys`` ``[kv_head, position, head_dim]``
    (every position, also on a sliding-window layer). ``softcap`` and ``window`` are the layer's logit
    soft-capping and sliding window (None: none), applied as the model applies them.
    Returns ``[kv_head, group, w, position]``: each row sums to 1 over the keys its query can see.
    """
    n = queries.shape[1]
    _, probs = causal_attention(queries[:, n - w :], keys, None, scaling, softcap=softcap, window=window)
    return probs.view(keys.shape[0], queries.shape[0] // keys.shape[0], w, n)


def causal_probs(query: torch.Tensor, key: torch.Tensor, scaling: float, softcap: float | None = None) -> torch.Tensor:
    """Float32 probabilities ``[q_head, q, k]`` of :func:`causal_attention` for ``query`` ``[q_head, q, d]``
    (the LAST ``q`` of the ``k`` positions of ``key`` ``[kv_head, k, d]``), with the model's own ``scaling``
    and logit ``softcap``: the form the analyses use."""
    return causal_attention(query, key, None, scaling, softcap=softcap, dtype=torch.float32)[1]
