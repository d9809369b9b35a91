"""``ks.compress``: a strategy applied inside the caller's own ``model.generate`` or forward loop.

Mechanism (dense cache, masked eviction): the Hugging Face cache keeps every slot, so its length,
generate's ``cache_position`` and the RoPE positions of later tokens stay exactly what they would be
without compression (true positions), and each left-padded row keeps its own padding mask. Evicted
slots are hidden per (row, layer, kv_head) by the attention function of
:mod:`kvscope.compress.attention`; the same ``Strategy`` objects as ``kvscope prune``/``bench`` choose
them, from the same prefill measurements (attention received, post-RoPE queries, keys). Memory is
therefore NOT freed: ``stats.bytes_after`` is what a cache holding only the kept tokens would take (what
an eviction kernel would hold), ``stats.held_bytes`` what this simulation holds.

- ``ratio``: after the first forward of a sequence (empty cache; the prompt), each row's cache is cut
  to ``strategy.budget(n, ratio)`` tokens per layer and kv_head (the strategy's own sharing rules:
  PyramidKV across layers, Ada-KV across kv_heads), before decoding goes on.
- ``budget``: no layer holds more than ``budget`` kept tokens per kv_head at any decode step; eviction
  happens inside each layer's attention, before the step's query reads the cache, every ``every``
  steps (then down to ``budget - every + 1``). The prompt is processed whole, then cut to ``budget``.
  A later forward of several tokens (teacher forcing) is that many steps, one token each, inside each
  layer's attention: the same tokens kept and the same logits as one token per forward.
- ``quantize``: KIVI (``kvscope.quant``) on each row's kept prompt tokens after the prefill, as
  ``kvscope bench`` does; decoded tokens stay at full precision.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.archs import layer_windows
from kvscope.attention_interface import routed
from kvscope.compat import cache_keyword, output_cache
from kvscope.compress import attention
from kvscope.compress.decoding import SCORERS
from kvscope.compress.session import Session
from kvscope.errors import UsageError
from kvscope.prune.engine import Config, configure
from kvscope.prune.strategies import Strategy, kvpress_adapter, make_strategy
from kvscope.quant import KiviSpec


def strategy(name: str, **settings: Any) -> Strategy:
    """The registered strategy ``name`` with ``settings``: ``ks.strategy("snapkv", window=64)``."""
    return make_strategy(name, **settings)


@dataclass
class CompressStats:
    """What the cache kept at the end of the block (the last sequence generated in it).

    ``kept`` int ``[batch, layer, kv_head]``: tokens kept; ``tokens`` per row: real tokens seen (prompt +
    fed later); ``keep`` per row: bool ``[layer, kv_head, tokens]`` (True = kept, by position: the eviction
    map); ``bytes_before``: K and V of every real token the model's own cache holds (a sliding layer: its
    last ``window - 1``) at the cache's dtype; ``bytes_after``: the kept entries (KIVI: packed prompt tokens
    + full-precision later tokens); ``held_bytes``: the dense tensors this simulation holds; ``max_held``:
    the most kept tokens of any (row, layer, kv_head) at any decode step; ``sequences``: prefills seen in
    the block.
    """

    kept: torch.Tensor
    tokens: list[int]
    keep: list[torch.Tensor]
    bytes_before: int
    bytes_after: int
    held_bytes: int
    max_held: int
    sequences: int
    label: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def kept_fraction(self) -> float:
        return self.bytes_after / self.bytes_before if self.bytes_before else 1.0


class Compressor:
    """The context manager ``ks.compress`` returns; ``.stats`` after the block."""

    _active: Compressor | None = None

    def __init__(self, model: Any, config: Config, every: int) -> None:
        """``config``: the engine's configuration (``kvscope.prune.engine.configure``), checked already."""
        from kvscope.hfcache import attention_modules
        from kvscope.models import describe

        if config.quant is not None and any(layer_windows(model.config)):
            raise UsageError(
                f"quantize: {type(model).__name__} has sliding-window layers, whose cache drops tokens while "
                "decoding, which KIVI's packed groups cannot follow; use ratio= or budget= alone",
                param="quantize",
            )
        self.model, self.config, self.every = model, config, every
        self.info = describe(model, type(model).__name__)
        scalings = [float(getattr(m, "scaling", self.info.head_dim**-0.5)) for m in attention_modules(model)]
        c = config
        self.session = Session(self.info, scalings, c.strategy, c.ratio, c.budget, every, c.quant)
        self.stats: CompressStats | None = None
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> Compressor:
        if Compressor._active is not None:
            raise UsageError("ks.compress blocks cannot be nested: leave the active block before entering another")
        attention.register()
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(routed(self.model, attention.NAME))
            token = attention.ACTIVE.set(self.session)
            stack.callback(attention.ACTIVE.reset, token)
            stack.callback(self.model.register_forward_pre_hook(self._before, with_kwargs=True).remove)
            stack.callback(self.model.register_forward_hook(self._after, with_kwargs=True).remove)
            stack.enter_context(kvpress_adapter.attached(self.model, [self.config.strategy]))  # a kvpress press
        except BaseException:
            stack.close()
            raise
        self._stack, Compressor._active = stack, self
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._stack.close()
        finally:
            Compressor._active, self._stack = None, None
            self.stats = self._stats()

    def held(self) -> torch.Tensor:
        """Kept tokens now, int ``[batch, layer, kv_head]`` (for checks at every step)."""
        keep = self.session.keep
        return torch.stack([keep[layer].sum(-1).cpu() for layer in sorted(keep)], 1)

    # ------------------------------------------------------------------ hooks

    def _before(self, _module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        embeds = kwargs.get("inputs_embeds")
        cache = kwargs.get(cache_keyword(self.model), kwargs.get("past_key_values"))
        if cache is not None and int(cache.get_seq_length()) > 0:
            return None
        shape = ids.shape if ids is not None else embeds.shape[:2]
        self.session.start(ids if ids is not None else torch.zeros(shape, dtype=torch.int64), _pads(kwargs, shape))
        return attention.dense_prefill(self.model, args, kwargs, cache)

    def _after(self, _module: Any, _args: tuple, _kwargs: dict, output: Any) -> None:
        if self.session.prefilling:
            from kvscope.hfcache import cache_layer_kv

            self.session.finish_prefill(output_cache(output), cache_layer_kv)

    def _stats(self) -> CompressStats:
        s = self.session
        if not s.keep:
            empty = torch.zeros(0, self.info.layers, self.info.kv_heads, dtype=torch.int64)
            return CompressStats(empty, [], [], 0, 0, 0, 0, s.sequences, self.config.label)
        layers = sorted(s.keep)
        end = min(s.keep[layer].shape[-1] for layer in layers)  # some layers are ahead after an interruption
        keeps = [torch.stack([s.keep[layer][b, :, pad:end].cpu() for layer in layers]) for b, pad in enumerate(s.pads)]
        per_entry = 2 * self.info.head_dim * s.element_size  # K and V of one token of one kv_head
        before = sum(s.held_tokens(k.shape[-1]) for k in keeps) * self.info.kv_heads * per_entry  # what the cache holds
        after = sum(int(k.sum()) for k in keeps) * per_entry
        if self.config.quant is not None:  # the prompt's kept tokens as KIVI packed them, later tokens as they are
            prompt_kept = sum(int(k[..., : s.prompt_slots - pad].sum()) for k, pad in zip(keeps, s.pads))
            after += sum(map(sum, s.prompt_kivi_bytes)) - prompt_kept * per_entry
        held = sum(t.numel() for t in s.keep.values()) * per_entry
        kept = torch.stack([k.sum(-1) for k in keeps])
        return CompressStats(
            kept, [k.shape[-1] for k in keeps], keeps, before, after, held, s.max_held, s.sequences, self.config.label
        )


def _pads(kwargs: dict, shape: tuple) -> list[int]:
    """Left-padding slots per row from the 2-D ``attention_mask`` (zeros on the left); right padding refused."""
    mask = kwargs.get("attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        return [0] * shape[0]
    pads = (mask == 0).sum(1).tolist()
    for b, pad in enumerate(pads):
        if not bool(mask[b, pad:].all()):
            raise UsageError(f"ks.compress needs left padding (tokenizer.padding_side = 'left'): row {b} is not")
    return [int(p) for p in pads]


def compress(
    model: Any,
    strategy: str | Strategy | None = None,
    ratio: float | None = None,
    budget: int | None = None,
    every: int = 1,
    quantize: str | KiviSpec | None = None,
    **settings: Any,
) -> Compressor:
    """A context manager compressing ``model``'s KV cache inside the block (see the module docstring).

    >>> with ks.compress(model, "snapkv", ratio=0.5, window=64) as c:   # doctest: +SKIP
    ...     out = model.generate(**inputs, max_new_tokens=32)
    >>> c.stats.kept.shape  # [batch, layer, kv_head]                    # doctest: +SKIP
    """
    if kvpress_adapter.is_press(strategy):  # a kvpress press object: ratio defaults to its compression_ratio
        strategy, ratio = kvpress_adapter.from_press(strategy, ratio)
    config = configure(strategy, ratio, budget, quantize, settings, zero=True)  # the engine's one check
    _check(config, every)
    return Compressor(model, config, every)


def _check(config: Config, every: Any) -> None:
    """What decoding adds to the engine's checks: a budget needs a decode-time scorer and whole layers."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UsageError(f"every must be a positive integer, got {every!r}", param="every")
    if config.budget is None:
        return
    name = config.strategy.name
    if name not in SCORERS:
        raise UsageError(
            f"budget: {name} scores the prompt as a whole and cannot evict while decoding; "
            f"use one of {', '.join(SCORERS)}, or ratio= alone",
            param="budget",
        )
    if getattr(config.strategy, "skip_layers", 0):
        raise UsageError("budget: knorm's skip_layers keeps layers whole, which a budget forbids", param="budget")
    if every > config.budget:
        raise UsageError(f"every must be at most budget ({config.budget}), got {every}", param="every")
