"""Prefix reuse: a second prompt continues from the first prompt's cached prefix.

Causal attention makes a position's K/V depend only on the tokens up to it, so two prompts that share
their first ``s`` tokens share those ``s`` cache slots exactly (the idea behind vLLM's automatic prefix
caching and SGLang's RadixAttention, Zheng et al. 2024). The second prompt then computes only its
suffix, at positions ``s..n-1``, against the reused slots. Its logits must equal a fresh run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.caching.flops import FlopModel, prefix_savings
from kvscope.caching.projections import hooked_forward
from kvscope.compat import forward
from kvscope.hfcache import cache_from_tensors, cache_layer_kv

LOGIT_TOLERANCE = 1e-3  # absolute, on float32 logits (observed differences are ~1e-5)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Number of leading token ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones (``perf_counter``)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class PrefixReuse:
    """Outcome of reusing prompt 1's cached prefix for prompt 2 (``n2`` tokens).

    ``shared``: leading tokens in common; ``reused``: slots taken from the cache (``shared``, but at most
    ``n2 - 1`` so that one position is computed and yields logits). ``logits_max_abs_diff`` compares the
    continuation's logits ``[n2 - reused, vocab]`` with the fresh run's. ``flops`` is
    ``flops.prefix_savings``; times are medians in seconds. ``attention`` ``[n2, n2]`` is prompt 2's
    attention in ``layer``, averaged over q_heads (for the figure).
    """

    tokens1: list[str]
    tokens2: list[str]
    shared: int
    reused: int
    logits_max_abs_diff: float
    logits_match: bool
    flops: dict[str, Any]
    seconds_fresh: float
    seconds_reuse: float
    seconds_cache_copy: float
    layer: int
    attention: torch.Tensor

    @property
    def seconds_saved(self) -> float:
        return self.seconds_fresh - self.seconds_reuse


def prefix_cache(model: Any, cache: Any, n_layers: int, keep: int) -> Any:
    """A new cache (laid out as the model's own) holding copies of the first ``keep`` slots of ``cache`` in
    every layer; ``cache`` holds every position (a plain ``DynamicCache()``), so a sliding-window layer
    then keeps the last of those ``keep`` positions that its window needs, as after a prefill of them."""
    kv = [cache_layer_kv(cache, layer) for layer in range(n_layers)]
    return cache_from_tensors(model.config, [k[:, :, :keep] for k, _ in kv], [v[:, :, :keep] for _, v in kv])


def continue_from(model: Any, cache: Any, input_ids: torch.Tensor, start: int, logits_to_keep: int = 0) -> Any:
    """Run ``input_ids[:, start:]`` at positions ``start..n-1`` on top of ``cache`` (mutated) and return the output."""
    device = next(model.parameters()).device
    n = input_ids.shape[1]
    with torch.inference_mode():
        return forward(
            model,
            cache,
            input_ids=input_ids[:, start:].to(device),
            use_cache=True,
            position_ids=torch.arange(start, n, device=device).unsqueeze(0),
            logits_to_keep=logits_to_keep,
        )


def prefix_reuse(
    model: Any,
    info: Any,
    ids1: torch.Tensor,
    ids2: torch.Tensor,
    layer: int,
    tokens: tuple[list[str], list[str]],
    repeats: int = 5,
) -> PrefixReuse:
    """Cache prompt 1 (``ids1 [1, n1]``), continue prompt 2 (``ids2 [1, n2]``) from the shared prefix, and
    check its logits against a fresh run of prompt 2; count the FLOPs saved and time both ways."""
    from transformers import DynamicCache

    n2 = ids2.shape[1]
    shared = common_prefix(ids1[0].tolist(), ids2[0].tolist())
    reused = min(shared, n2 - 1)
    cache1 = DynamicCache()  # every position in every layer: a prefix can be cut from it
    continue_from(model, cache1, ids1, 0, logits_to_keep=1)
    reuse_logits = continue_from(model, prefix_cache(model, cache1, info.layers, reused), ids2, reused).logits[0]
    fresh_proj, fresh_out = hooked_forward(model, info, ids2, layer, use_cache=False)
    diff = float((reuse_logits.float() - fresh_out.logits[0, reused:].float()).abs().max())
    _, probs = fresh_proj.by_hand(values=None)

    def fresh() -> None:
        continue_from(model, DynamicCache(config=model.config), ids2, 0, logits_to_keep=1)

    def reuse() -> None:
        continue_from(model, prefix_cache(model, cache1, info.layers, reused), ids2, reused, logits_to_keep=1)

    return PrefixReuse(
        tokens1=tokens[0],
        tokens2=tokens[1],
        shared=shared,
        reused=reused,
        logits_max_abs_diff=diff,
        logits_match=diff <= LOGIT_TOLERANCE,
        flops=prefix_savings(FlopModel.from_model(model, info), n2, reused),
        seconds_fresh=median_seconds(fresh, repeats),
        seconds_reuse=median_seconds(reuse, repeats),
        seconds_cache_copy=median_seconds(lambda: prefix_cache(model, cache1, info.layers, reused), repeats),
        layer=layer,
        attention=probs.mean(0).float(),
    )
