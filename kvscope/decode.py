"""The package's one decoding loop: batch rows, greedy or sampled, stop ids, explicit positions.

``generate`` continues a model from a given cache and either the logits of the last fed token
(``first_logits`` ``[batch, vocab]``) or tokens still to feed (``first_tokens`` ``[batch, L]``, e.g. a
prompt, or the last token of a continuation). Each step picks one token per live row, then feeds the
picked tokens back in one forward pass at explicit positions; a row stops after a stop token, and the
last picked tokens are never fed (their logits would go unread).

Callers that keep their own bookkeeping of slots and positions (LatentMAS's shared cache, evicted
caches with holes) pass ``step``: a function ``(tokens [batch, L], live [batch, L] bool) -> logits
[batch, vocab]`` that runs the forward pass its own way. Without it, the default step passes
``position_ids`` from ``positions`` (each row's next position, default the cache length) and, when an
``attention_mask`` over the cached slots is given, extends it with each fed token's liveness.

Sampling follows transformers' warper order: temperature, then top-k, then top-p (nucleus; Holtzman
et al., ICLR 2020). Each row draws from its own ``torch.Generator``, so a row's tokens do not depend on
the batch it runs in. ``temperature == 0`` is greedy (argmax).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.compat import forward, output_cache

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Sampler:
    """``temperature`` 0 = greedy; ``top_k`` None = off; ``top_p`` 1.0 = off."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 (or None for off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


GREEDY = Sampler()

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


def stop_tokens(tokenizer: Any, model: Any = None) -> frozenset[int]:
    """Ids that end an answer: the tokenizer's EOS, the model's ``generation_config.eos_token_id`` (an
    id or a list) and the end-of-turn tokens of common chat templates present in the vocabulary
    (``END_OF_TURN``)."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen) if isinstance(gen, (list, tuple)) else {gen}
    vocab = tokenizer.get_vocab()
    ids |= {vocab[t] for t in END_OF_TURN if t in vocab}
    return frozenset(int(i) for i in ids if i is not None)


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """``logits`` ``[vocab]`` with all but the ``k`` largest set to -inf (ties at the k-th value kept)."""
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k).values[-1]
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p``; renormalise.

    ``probs`` ``[vocab]``. The most likely token is always kept.
    """
    if top_p >= 1.0:
        return probs
    sorted_p, order = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_p, dim=0) - sorted_p  # mass of strictly more likely tokens
    sorted_p = torch.where(before < top_p, sorted_p, torch.zeros_like(sorted_p))
    kept = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return kept / kept.sum()


def sample_token(logits: torch.Tensor, sampler: Sampler, generator: torch.Generator | None = None) -> int:
    """One token id from ``logits`` ``[vocab]``: argmax when ``sampler.temperature`` is 0."""
    if sampler.temperature <= 0:
        return int(torch.argmax(logits))
    scaled = top_k_filter(logits.double() / sampler.temperature, sampler.top_k)
    probs = top_p_filter(torch.softmax(scaled, dim=-1), sampler.top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass
class Decoded:
    """``tokens``: each row's generated ids (a stop token included); ``step_seconds``: wall time of each
    step, the forward pass that gave a token's logits plus its pick (step 0 includes the prefill of
    ``first_tokens``); ``cache``: the cache after the last forward (the default step only)."""

    tokens: list[list[int]]
    step_seconds: list[float] = field(default_factory=list)
    cache: Any = None


def cached_step(
    model: Any, cache: Any, positions: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[Step, Callable[[], Any]]:
    """The default step over a Hugging Face cache, and a getter of the cache it currently holds.

    ``positions`` ``[batch]``: each row's next position; fed tokens take ``positions + 0, 1, ...``.
    ``attention_mask`` ``[batch, slots]`` over the cached slots, or None when every slot is real.
    """
    device = next(model.parameters()).device
    box = {"cache": cache, "next": positions.clone().to(torch.int64), "mask": attention_mask}

    def step(tokens: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        width = tokens.shape[1]
        pos = box["next"][:, None] + torch.arange(width)[None, :]
        kw = {"input_ids": tokens.to(device), "position_ids": pos.to(device), "use_cache": True, "logits_to_keep": 1}
        if box["mask"] is not None:
            box["mask"] = torch.cat([box["mask"].cpu(), live.long()], dim=1)
            kw["attention_mask"] = box["mask"].to(device)
        with torch.inference_mode():
            out = forward(model, box["cache"], **kw)
        box["cache"] = output_cache(out) if box["cache"] is None else box["cache"]
        box["next"] = box["next"] + width
        return out.logits[:, -1].float()

    return step, lambda: box["cache"]


def generate(
    model: Any,
    cache: Any = None,
    *,
    first_logits: torch.Tensor | None = None,
    first_tokens: torch.Tensor | None = None,
    max_new_tokens: int,
    sampler: Sampler = GREEDY,
    stop_ids: Sequence[int] = (),
    generators: Sequence[torch.Generator | None] | None = None,
    positions: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_id: int = 0,
    step: Step | None = None,
    until: Callable[[list[int]], bool] | None = None,
) -> Decoded:
    """Decode up to ``max_new_tokens`` per row after ``first_logits`` or after feeding ``first_tokens``.

    Exactly one of ``first_logits`` ``[batch, vocab]`` and ``first_tokens`` ``[batch, L]`` (int64) is given.
    ``positions`` ``[batch]`` is the position of the next fed token (default: the cache length, 0 without a
    cache); ``generators`` one per row (None: the global RNG). A row also stops once ``until(its tokens
    so far)`` is true (a caller's own end, e.g. a settled verdict). Finished rows are fed ``pad_id`` with
    ``live`` False until every row stops.
    """
    if (first_logits is None) == (first_tokens is None):
        raise ValueError("give exactly one of first_logits and first_tokens")
    batch = (first_logits if first_logits is not None else first_tokens).shape[0]
    get_cache = lambda: cache  # noqa: E731 - a caller-supplied step owns its cache
    if step is None:
        if positions is None:
            start = cache.get_seq_length() if cache is not None else 0
            positions = torch.full((batch,), start, dtype=torch.int64)
        step, get_cache = cached_step(model, cache, positions, attention_mask)
    gens = list(generators) if generators is not None else [None] * batch
    stops = frozenset(stop_ids)
    result = Decoded([[] for _ in range(batch)])
    t0 = time.perf_counter()
    logits = (
        first_logits
        if first_logits is not None
        else step(first_tokens, torch.ones_like(first_tokens, dtype=torch.bool))
    )
    done = [False] * batch
    for i in range(max_new_tokens):
        new = [pad_id] * batch
        for row in range(batch):
            if not done[row]:
                new[row] = sample_token(logits[row], sampler, gens[row])
                result.tokens[row].append(new[row])
                done[row] = new[row] in stops or (until is not None and until(result.tokens[row]))
        result.step_seconds.append(time.perf_counter() - t0)  # the forward that gave these logits + the pick
        if all(done) or i == max_new_tokens - 1:
            break  # the last picked tokens need no forward pass
        live = torch.tensor([not d for d in done])[:, None]
        t0 = time.perf_counter()
        logits = step(torch.tensor(new, dtype=torch.int64)[:, None], live)
    result.cache = get_cache()
    return result
