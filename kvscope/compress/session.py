"""One compressed sequence: what ``ks.compress`` records at prefill, the keep masks, and the eviction
it applies while decoding.

Shapes: ``keep[layer]`` bool ``[batch, kv_head, slots]`` over the dense cache's slots (True = kept;
left-padding slots are False); ``pads[b]`` = left-padding slots of row ``b``; row ``b``'s real tokens
sit in slots ``pads[b] ..`` at positions ``0 ..``.
"""

from __future__ import annotations

from typing import Any

import torch

from kvscope.attention import chunked_attention, last_query_probs
from kvscope.compress.attention import attend, attend_with_probs, visible
from kvscope.compress.decoding import NEEDS_PROBS, SCORERS, evict
from kvscope.errors import UsageError
from kvscope.models import ModelInfo
from kvscope.prune.evict import Prefill, gather_layer
from kvscope.prune.strategies.base import top_keep
from kvscope.prune.strategies.kvpress_adapter import is_press_name
from kvscope.quant import KiviSpec, kivi_layer
from kvscope.snapshot import KVSnapshot

# what each registered strategy reads from the prefill besides keys and values (others: both)
READS = {
    "h2o": {"received"},
    "snapkv": {"queries"},
    "pyramidkv": {"queries"},
    "adakv": {"queries"},
    "tova": {"queries"},
    "knorm": set(),
    "streaming": set(),
    "magnitude": set(),
    "random": set(),
}


def _reads(name: str | None) -> set[str]:
    """What strategy ``name`` reads from the prefill (``READS``; an unknown one: both). A kvpress press
    reads neither: it scores from the keys, the values and the attention inputs its own recorder keeps
    (``kvpress_adapter.Recorder``), with ``attentions=None``."""
    if is_press_name(name):
        return set()
    return READS.get(name, {"received", "queries"})


class Session:
    """Bookkeeping for the sequence being generated inside a ``ks.compress`` block."""

    def __init__(
        self, info: ModelInfo, scalings: list[float], strategy: Any, ratio: float | None, budget: int | None,
        every: int, quant: KiviSpec | None,
    ) -> None:  # fmt: skip
        self.info, self.scalings = info, scalings
        self.strategy, self.ratio, self.budget, self.every, self.quant = strategy, ratio, budget, every, quant
        self.name = getattr(strategy, "name", None)
        self.evicts = strategy is not None and (ratio != 0 or budget is not None)  # ratio 0 keeps everything
        reads = _reads(self.name) if self.evicts else set()
        self.want_received, self.want_queries = "received" in reads, "queries" in reads
        self.decode_probs = budget is not None and self.name in NEEDS_PROBS
        self.generators: dict[int, torch.Generator] = {}  # [layer] random's draws (``rng``)
        self.sequences = 0
        self.start(torch.zeros(1, 0, dtype=torch.int64), [0])
        self.prefilling = False

    def start(self, ids: torch.Tensor, pads: list[int]) -> None:
        """A fresh sequence begins: ``ids`` ``[batch, P]`` (left-padded), ``pads`` per row."""
        self.ids, self.pads, self.prefilling = ids, pads, True
        self.queries: dict[int, list[torch.Tensor]] = {}
        self.received: dict[int, torch.Tensor] = {}
        self.last_probs: dict[int, torch.Tensor] = {}
        self.keep: dict[int, torch.Tensor] = {}
        self.full: dict[int, bool] = {}
        self.prompt_kivi_bytes = [[0] * self.info.layers for _ in pads]
        self.prompt_slots = 0
        self.max_held = 0
        self.steps: dict[int, list[int]] = {}  # [layer] kept tokens per decode step (``step_held``)
        self.softcap: float | None = None
        self.windows: dict[int, int | None] = {}  # [layer] sliding window (from the prefill's calls)
        self.element_size = 4

    # ------------------------------------------------------------------ attention calls

    def attention(
        self, layer: int, query, key, value, mask, scaling: float, softcap: float | None = None,
        window: int | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Output ``[b, q_head, q, d]`` of one layer's attention inside the block. ``mask``: transformers'
        bool ``[b, 1, q, slots]`` (causal, padding and ``window``, the layer's sliding window) or None;
        ``softcap``: the model's logit soft-capping (Gemma 2).

        A decode call under a ``budget`` takes its ``q`` new tokens one at a time, each a step as if fed
        alone (its keep mask grown by one slot and cut to the budget, then its query, then the scores it
        adds), so a chunk of teacher-forced tokens equals as many single-token forwards: the layer's
        inputs come from lower layers that did the same. Without a budget nothing evicts: one step."""
        if self.prefilling:
            self.softcap, self.windows[layer] = softcap, window
            return self._prefill_layer(layer, query, key, value, mask, scaling)
        new = query.shape[2]
        old = key.shape[2] - new
        spans = [(i, i + 1) for i in range(new)] if self.budget is not None else [(0, new)]
        outs = []
        for s, e in spans:  # under a budget each new token is a step: evict, attend, score, in that order
            m = None if mask is None else mask[:, :, s:e, : old + e]
            k, v = key[:, :, : old + e], value[:, :, : old + e]
            outs.append(self._step(layer, query[:, :, s:e], k, v, m, scaling, softcap))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 2)

    def _step(self, layer: int, query, key, value, mask, scaling: float, softcap: float | None) -> torch.Tensor:
        """One decode step of a layer: ``query`` ``[b, q_head, new, d]`` holds the step's tokens, the last
        ``new`` slots of ``key``/``value`` ``[b, kv_head, slots, d]``; ``mask`` their rows of the call's mask."""
        new, group = query.shape[2], query.shape[1] // key.shape[1]
        keep = self._extend(layer, key, new)
        allowed = visible(mask, None if self.full.get(layer) else keep, new, group)
        if not self.decode_probs:
            out = attend(query, key, value, allowed, scaling, softcap)[0]
        else:
            out, probs = attend_with_probs(query, key, value, allowed, scaling, softcap)
            self._accumulate(layer, probs.detach(), key.shape[1])
        self._slide(layer)
        return out

    def _slide(self, layer: int) -> None:
        """A sliding-window layer after a step: like the model's own cache, it holds only its last
        ``window - 1`` slots (the next query sees those and itself); older slots are no longer kept."""
        window, keep = self.windows.get(layer), self.keep[layer]
        if window and keep.shape[-1] >= window:
            keep[..., : keep.shape[-1] - window + 1] = False
            self.full[layer] = False

    def _prefill_layer(self, layer: int, query, key, value, mask, scaling: float) -> torch.Tensor:
        """Each row on its real tokens alone (the prune/bench prefill), recording what strategies read."""
        softcap, window = self.softcap, self.windows.get(layer)
        mask = mask if window else None  # without a window: plain causal on each row's real tokens
        if not (self.want_received or self.want_queries or any(self.pads)):
            return attend(query, key, value, mask, scaling, softcap)[0]  # nothing to record: plain causal
        out = torch.zeros_like(query)
        received = torch.zeros(key.shape[0], key.shape[1], key.shape[2])
        last = torch.zeros(key.shape[0], key.shape[2])
        rows = []
        for b, pad in enumerate(self.pads):
            q, k, v = query[b : b + 1, :, pad:], key[b : b + 1, :, pad:], value[b : b + 1, :, pad:]
            m = None if mask is None else mask[b : b + 1, :, pad:, pad:]  # the row's window, no padding
            if self.want_received:  # the recording prefill of prune/bench (attention received per key)
                out[b : b + 1, :, pad:], got, _ = chunked_attention(q, k, v, m, scaling, softcap)
                received[b, :, pad:] = got.cpu()
            else:
                out[b : b + 1, :, pad:] = attend(q, k, v, m, scaling, softcap)[0]
            rows.append(q[0].detach().to(device="cpu", dtype=torch.float32, copy=True) if self.want_queries else None)
            if self.decode_probs and rows[-1] is not None:  # TOVA's first decode-time scores
                probs = last_query_probs(rows[-1], k[0].detach().float().cpu(), scaling, 1, softcap, window)
                last[b, pad:] = probs.mean(dim=(0, 1, 2))
        self.queries[layer] = rows
        if self.want_received:
            self.received[layer] = received
        if self.decode_probs:
            self.last_probs[layer] = last
        return out

    def _extend(self, layer: int, key: torch.Tensor, new: int) -> torch.Tensor:
        """The layer's keep mask grown to the cache's slots (new slots kept), then cut to the budget."""
        slots = key.shape[2]
        keep = self.keep.get(layer)
        if keep is None:
            keep = torch.ones(key.shape[0], key.shape[1], slots, dtype=torch.bool, device=key.device)
            self.full[layer] = True
        grow = slots - keep.shape[-1]
        if grow > 0:
            keep = torch.cat([keep, keep.new_ones(*keep.shape[:2], grow)], -1)
            if layer in self.received:
                self.received[layer] = torch.cat([self.received[layer], torch.zeros(*keep.shape[:2], grow)], -1)
        if self.budget is not None and int(keep.sum(-1).max()) > self.budget:
            scores = SCORERS[self.name](self, layer, key)
            keep = keep & ~evict(keep, scores, new, self.budget, self.every)
            self.full[layer] = False
        self.keep[layer] = keep
        held = int(keep.sum(-1).max())
        self.max_held = max(self.max_held, held)
        self.steps.setdefault(layer, []).append(held)
        return keep

    def step_held(self) -> list[int]:
        """Per decode step of this sequence, the most kept tokens of any (row, layer, kv_head) that the
        step's query read (a step: one token under a budget, else one forward's new tokens)."""
        per_layer = [self.steps[layer] for layer in sorted(self.steps)]
        return [max(held) for held in zip(*per_layer)] if per_layer else []

    def rng(self, layer: int) -> torch.Generator:
        """Layer ``layer``'s generator for ``random``, seeded from the strategy's ``seed`` and the layer, so
        its draws do not depend on the order in which layers and steps run."""
        if layer not in self.generators:
            seed = int(getattr(self.strategy, "seed", 0))
            self.generators[layer] = torch.Generator().manual_seed(seed * 10_000 + layer)
        return self.generators[layer]

    def held_tokens(self, tokens: int) -> int:
        """Tokens the model's own cache holds over all layers after ``tokens`` real tokens (a sliding
        layer: the last ``window - 1``), per kv_head."""
        windows = [self.windows.get(layer) for layer in range(self.info.layers)]
        return sum(min(tokens, w - 1) if w else tokens for w in windows)

    def _accumulate(self, layer: int, probs: torch.Tensor, kv_heads: int) -> None:
        """H2O's received attention and TOVA's last-query attention from one decode call's probs."""
        b, hq, q, slots = probs.shape
        if layer in self.received:
            self.received[layer] += probs.view(b, kv_heads, hq // kv_heads, q, slots).sum((2, 3)).cpu()
        self.last_probs[layer] = probs[:, :, -1].mean(1).cpu()

    # ------------------------------------------------------------------ after the prefill

    def finish_prefill(self, cache: Any, cache_kv) -> None:
        """Keep plans per row (the strategy), KIVI on the kept prompt tokens, decode-time state."""
        self.prefilling, self.sequences = False, self.sequences + 1
        if cache is None:
            return
        layers = [cache_kv(cache, layer) for layer in range(self.info.layers)]
        batch, kv, slots, _ = layers[0][0].shape
        self.prompt_slots, self.element_size = slots, layers[0][0].element_size()
        keep = torch.zeros(self.info.layers, batch, kv, slots, dtype=torch.bool)
        for b, pad in enumerate(self.pads):
            keep[:, b, :, pad:] = self._plan(b, layers)
        for layer, (k, v) in enumerate(layers):
            self.keep[layer] = keep[layer].to(k.device)
            self.full[layer] = bool(keep[layer][:, :, max(self.pads) :].all()) and not any(self.pads)
            self._slide(layer)  # a sliding layer holds its last window - 1 slots: eviction inside them
            if self.quant is not None:
                self._kivi(layer, k, v, keep[layer])
        self.queries = {}

    def _plan(self, b: int, layers: list) -> torch.Tensor:
        """Keep plan ``[layer, kv_head, n]`` of row ``b`` (all True without a strategy)."""
        pad = self.pads[b]
        n = layers[0][0].shape[2] - pad
        if not self.evicts or n == 0:
            return torch.ones(self.info.layers, layers[0][0].shape[1], n, dtype=torch.bool)
        pre = self._prefill_row(b, layers)
        if self.ratio is not None:
            return self.strategy.keep(pre, self.ratio).cpu()
        k = min(n, self.budget)
        return top_keep(self.strategy.scores(pre, k), k).cpu()

    def _prefill_row(self, b: int, layers: list) -> Prefill:
        """Row ``b``'s prefill as ``kvscope.prune`` builds it (keys, values, queries, attention received)."""
        pad = self.pads[b]
        keys = [k[b : b + 1, :, pad:] for k, _ in layers]
        values = [v[b : b + 1, :, pad:] for _, v in layers]
        n, layers = keys[0].shape[2], self.info.layers
        snap = KVSnapshot(
            keys=[k[0].detach().to(device="cpu", dtype=torch.float32, copy=True) for k in keys],
            values=[v[0].detach().to(device="cpu", dtype=torch.float32, copy=True) for v in values],
            token_ids=self.ids[b, pad:].cpu(),
            tokens=[""] * n,
            special=torch.zeros(n, dtype=torch.bool),
            positions=torch.arange(n),
            info=self.info,
            queries=[self.queries[layer][b] for layer in range(layers)] if self.want_queries else None,
            attention_received=(
                torch.stack([self.received[layer][b, :, pad:] for layer in range(layers)])
                if self.want_received
                else None
            ),
        )
        windows = [self.windows.get(layer) for layer in range(layers)]
        return Prefill(self.ids[b : b + 1, pad:], keys, values, snap, 0.0, self.scalings, softcap=self.softcap,
                       windows=windows)  # fmt: skip

    def _kivi(self, layer: int, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> None:
        """KIVI on each row's kept prompt tokens, written back into the dense cache in place."""
        for b in range(len(self.pads)):
            counts = keep[b].sum(-1)
            if not bool((counts == counts[0]).all()):
                raise UsageError(
                    f"quantize: layer {layer}: the strategy keeps different numbers of tokens per kv_head, "
                    "which KIVI cannot pack; use a strategy that keeps the same count per kv_head"
                )
            idx = keep[b].nonzero()[:, 1].view(keep.shape[1], -1).to(k.device)  # kept slots per kv_head
            kk, vv = gather_layer(k[b : b + 1], keep[b]), gather_layer(v[b : b + 1], keep[b])
            q = kivi_layer(kk, vv, self.quant)
            with torch.no_grad():
                k[b].scatter_(1, idx[:, :, None].expand_as(q.keys[0]), q.keys[0])
                v[b].scatter_(1, idx[:, :, None].expand_as(q.values[0]), q.values[0])
            self.prompt_kivi_bytes[b][layer] = q.nbytes
