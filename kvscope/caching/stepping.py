"""Decoding with and without the KV cache: one real decode step compared, greedy generation, timing.

With a cache, step ``t`` feeds only the newest token: its one query row attends to the keys and values
the cache already holds plus its own. Without a cache, every step recomputes the whole sequence. The two
must give the same attention row, the same logits and the same greedy tokens; only the work differs
(Pope et al., "Efficiently Scaling Transformer Inference", 2022, Sec. 2).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.caching.projections import hooked_forward
from kvscope.compat import forward
from kvscope.hfcache import cache_layer_kv
from kvscope.progress import track


@dataclass
class DecodeComparison:
    """One decode step of the last prompt token, with the cache versus recomputing everything.

    ``probs_cached`` ``[q_head, n]``: the single new query row against the ``n - 1`` cached keys and its own;
    ``probs_full`` ``[q_head, n, n]``: the full recomputation (its last row is the same step).
    ``diffs`` holds max absolute differences; ``cached_slots_before`` is the cache length the step consumed.
    """

    layer: int
    tokens: list[str]
    probs_cached: torch.Tensor
    probs_full: torch.Tensor
    cached_slots_before: int
    step_query_rows: int
    diffs: dict[str, float] = field(default_factory=dict)

    @property
    def probs_diff(self) -> torch.Tensor:
        """``|cached - full last row|`` ``[q_head, n]``."""
        return (self.probs_cached - self.probs_full[:, -1]).abs()


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def decode_step(model: Any, info: Any, input_ids: torch.Tensor, layer: int, tokens: list[str]) -> DecodeComparison:
    """Prefill ``input_ids[:, :-1]`` into a cache, then decode the last token consuming it; compare with a
    full recomputation of ``input_ids`` ``[1, n]`` (``n >= 2``). Attention rows are rebuilt by hand from the
    hooked query and the cache's own K/V tensors."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        forward(model, cache, input_ids=input_ids[:, :-1].to(device), use_cache=True, logits_to_keep=1)
    before = cache.get_seq_length()
    keys, values = (t[0].float().cpu() for t in cache_layer_kv(cache, layer))  # copies: the step may crop the cache
    step, out_step = hooked_forward(model, info, input_ids[:, -1:], layer, cache, use_cache=True)
    k_cache, v_cache = torch.cat([keys, step.k_post], 1), torch.cat([values, step.v], 1)  # what the step attended
    n, held = input_ids.shape[1], k_cache.shape[1]  # a sliding-window layer holds its last window - 1
    o_cached, p_cached = step.by_hand(k_cache, v_cache, k_positions=torch.arange(n - held, n))
    p_cached = torch.nn.functional.pad(p_cached, (n - held, 0))  # positions the cache dropped: 0
    full, out_full = hooked_forward(model, info, input_ids, layer, use_cache=False)
    o_full, p_full = full.by_hand()
    diffs = {
        "attention_row_cached_vs_full": _max_abs(p_cached[:, 0], p_full[:, -1]),
        "manual_vs_model_cached_step": _max_abs(o_cached, step.o_in),
        "manual_vs_model_full": _max_abs(o_full, full.o_in),
        "o_proj_input_cached_vs_full": _max_abs(step.o_in[:, 0], full.o_in[:, -1]),
        "cached_keys_vs_full_keys": _max_abs(k_cache, full.k_post[:, n - held :]),
        "logits_cached_vs_full": _max_abs(out_step.logits[0, -1], out_full.logits[0, -1]),
    }
    return DecodeComparison(
        layer=layer,
        tokens=tokens,
        probs_cached=p_cached[:, 0].float(),
        probs_full=p_full.float(),
        cached_slots_before=before,
        step_query_rows=step.q_post.shape[1],
        diffs=diffs,
    )


@dataclass
class GenerationTrace:
    """Greedy decoding of ``len(tokens)`` new tokens. ``step_seconds[t]`` is the time of step ``t`` and
    ``lengths[t]`` the sequence length after it (step 0 includes the prefill)."""

    use_cache: bool
    tokens: list[int]
    step_seconds: list[float]
    lengths: list[int]


def greedy(model: Any, input_ids: torch.Tensor, new_tokens: int, use_cache: bool) -> GenerationTrace:
    """Greedy-decode ``new_tokens`` after ``input_ids`` ``[1, P]`` through the package's one decode loop
    (``kvscope.decode.generate``), timing each step: the forward pass that gives a token plus its pick
    (step 0 is the prefill). Without the cache each step runs the whole sequence again."""
    from transformers import DynamicCache

    from kvscope.decode import generate

    cache = DynamicCache(config=model.config) if use_cache else None
    step = None if use_cache else _recompute_step(model)
    with torch.inference_mode():
        out = generate(model, cache, first_tokens=input_ids, max_new_tokens=new_tokens, step=step)
    tokens = out.tokens[0]
    lengths = [input_ids.shape[1] + i + 1 for i in range(len(tokens))]
    return GenerationTrace(use_cache, tokens, out.step_seconds, lengths)


def _recompute_step(model: Any):
    """A decode step with no cache: each call appends the fed tokens and runs the whole sequence again."""
    device = next(model.parameters()).device
    seen: list[torch.Tensor] = []

    def step(tokens: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        seen.append(tokens.to(device))
        out = model(input_ids=torch.cat(seen, dim=1), use_cache=False, logits_to_keep=1)
        return out.logits[:, -1].float()

    return step


def timed_generation(
    model: Any, input_ids: torch.Tensor, new_tokens: int, repeats: int = 3, quiet: bool = False
) -> dict[bool, GenerationTrace]:
    """``greedy`` with and without the cache, ``repeats`` times each after one short warm-up, interleaved;
    returns one trace per mode whose ``step_seconds`` are per-step medians over the repeats. Progress
    (``kvscope.progress.track``) shows on a terminal unless ``quiet``."""
    greedy(model, input_ids, min(2, new_tokens), True)
    greedy(model, input_ids, min(2, new_tokens), False)
    runs: dict[bool, list[GenerationTrace]] = {True: [], False: []}
    for _ in track(range(max(1, repeats)), "timing decoding with and without the cache", quiet=quiet):
        for mode in (True, False):
            runs[mode].append(greedy(model, input_ids, new_tokens, mode))
    out = {}
    for mode, traces in runs.items():
        med = [statistics.median(s) for s in zip(*(t.step_seconds for t in traces))]
        out[mode] = GenerationTrace(mode, traces[0].tokens, med, traces[0].lengths)
    return out
