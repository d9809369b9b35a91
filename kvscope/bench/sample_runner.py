"""Run samples through every configuration, prefilling each sample's context once.

For each sample: one prefill of the context (``kvscope.prune.evict.prefill``). For each
configuration (baseline, strategy@ratio, kivi@spec): a compressed copy of that cache
(``build_cache``), the question fed in one forward pass at the true positions ``P .. P+Q-1``, then
greedy answer tokens (``continuation_logits`` + ``decode``). Question and answer tokens attend to
the compressed cache only: query-agnostic compression, as in the usual benchmarks. ``text`` samples
score the continuation's perplexity against the compressed cache, as ``kvscope prune`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.bench.tasks import TASKS, Sample
from kvscope.bench.verdict import is_correct, settled_by
from kvscope.decode import stop_tokens
from kvscope.models import ModelInfo
from kvscope.prune.engine import Config
from kvscope.prune.evict import (
    Prefill,
    build_cache,
    continuation_logits,
    decode,
    perplexity,
    prefill,
    token_logliks,
)

# The LM head on the question's last 4 rows gives the last row bit for bit as on all its rows (on CPU a
# 1- to 3-row product takes another kernel, which rounds differently): benchmarks/logits_rows.py checks it.
LAST_ROWS = 4


@dataclass
class Outcome:
    """One sample x configuration. ``correct``/``answer`` for QA samples; ``ppl`` for text samples
    (``ppl_ratio`` = ppl / baseline ppl of the same sample). ``kv_bytes``: the context's cache as kept;
    ``seconds``: compressing plus answering (the prefill is counted once per sample, separately).
    ``settled`` (QA): True when decoding stopped early because the verdict could no longer change
    (``verdict.settled_by``), so ``answer`` is only the start of what the model would have written."""

    task: str
    sample: int
    config: str
    answer: str = ""
    gold: str = ""
    correct: bool | None = None
    ppl: float | None = None
    ppl_ratio: float | None = None
    scored_tokens: int | None = None
    kv_bytes: int = 0
    kv_fraction: float = 1.0
    seconds: float = 0.0
    settled: bool | None = None


@dataclass
class EvictionMap:
    """For one sample: per token, the share of (layer, kv_head) slots each strategy kept at ``ratio``."""

    task: str
    sample: int
    ratio: float
    tokens: list[str]
    needle: tuple[int, int] | None
    shares: dict[str, list[float]]
    correct: dict[str, bool | None]


@dataclass
class SampleRun:
    """Everything one sample produced."""

    outcomes: list[Outcome]
    prefill_seconds: float
    context_tokens: int
    map: EvictionMap | None = None
    warnings: list[str] = field(default_factory=list)


def answer_primer(sample: Sample) -> tuple[str, str]:
    """``(question, primer)``: a built-in task's question ends with the start of its answer after
    ``"? "`` (``"...pass key? The pass key is"``), which ``--chat`` moves to the assistant's turn; a
    ``--data`` question is the user's whole, with no primer."""
    if sample.task not in TASKS or "? " not in sample.question:
        return sample.question, ""
    question, _, primer = sample.question.partition("? ")
    return question + "?", primer


def encode(tokenizer: Any, sample: Sample, chat: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(context_ids [1, P], tail_ids [1, Q])``: the tail is the question (QA) or the continuation (text).

    Raw text by default (no chat template): context, then question. With ``chat`` (QA samples only)
    the context and question are one user message in the model's chat template and the answer primer
    (``answer_primer``) starts the assistant's turn, as kvpress's ``answer_prefix``; the rendered text is
    split where the context ends, so the context is still prefilled alone."""
    tail = sample.question if sample.kind == "qa" else sample.answer
    if chat and sample.kind == "qa":
        question, primer = answer_primer(sample)
        msgs = [{"role": "user", "content": sample.context + question}]
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + primer
        cut = text.index(sample.context) + len(sample.context)
        head, tail = text[:cut], text[cut:]
        ctx = tokenizer(head, return_tensors="pt", add_special_tokens=False).input_ids
    else:
        ctx = tokenizer(sample.context, return_tensors="pt").input_ids
    return ctx, tokenizer(tail, return_tensors="pt", add_special_tokens=False).input_ids


def answer_tokens(
    model: Any,
    pc: Any,
    question: torch.Tensor,
    start: int,
    steps: int,
    stops: frozenset[int] = frozenset(),
    done: Callable[[list[int]], bool] | None = None,
) -> list[int]:
    """Greedy answer: the question in one forward pass at ``start ..``, then up to ``steps - 1`` more
    tokens; it ends at the first token in ``stops`` (EOS, end of turn), so nothing after it is scored,
    or once ``done(tokens so far)`` (``verdict.settled_by``: the verdict can no longer change).
    Only the last ``LAST_ROWS`` rows of the question's logits are computed: the last one is read."""
    logits = continuation_logits(model, pc, question, start, rows=LAST_ROWS)
    first = int(logits[-1].argmax())
    if steps <= 1 or first in stops or (done is not None and done([first])):
        return [first]
    until = None if done is None else lambda ids: done([first, *ids])
    return [first] + decode(model, pc, first, start + question.shape[1], steps - 1, stops, until)


def run_config(
    model: Any,
    tokenizer: Any,
    pre: Prefill,
    cfg: Config,
    keep: torch.Tensor | None,
    sample: Sample,
    tail: torch.Tensor,
    steps: int,
    base: Outcome | None,
    stops: frozenset[int] | None = None,
) -> Outcome:
    """One configuration on one sample, against a compressed copy of ``pre``'s cache. ``stops``: the ids
    that end an answer (default ``stop_tokens(tokenizer, model)``). A QA answer also ends once its
    verdict is settled (``verdict.settled_by``), so ``answer`` may be shorter than ``steps`` tokens:
    the same verdict, fewer forward passes."""
    t0 = time.perf_counter()
    pc = build_cache(model.config, pre, keep, quant=cfg.quant)
    out = Outcome(
        sample.task,
        sample.index,
        cfg.name,
        gold=sample.answer if sample.kind == "qa" else "",
        kv_bytes=int(pc.kv_bytes),
    )
    if sample.kind == "qa":
        stops = stop_tokens(tokenizer, model) if stops is None else stops
        done = settled_by(tokenizer, sample.answer, steps)
        ids = answer_tokens(model, pc, tail, pre.n_positions, steps, stops, done)
        out.answer = tokenizer.decode(ids, skip_special_tokens=True)
        out.correct = is_correct(sample.answer, out.answer)
        out.settled = len(ids) < steps and ids[-1] not in stops  # neither the last step nor a stop token
    else:
        ll = token_logliks(continuation_logits(model, pc, tail, pre.n_positions), tail)
        out.ppl, out.scored_tokens = perplexity(ll), int(ll.numel())
    out.seconds = time.perf_counter() - t0
    if base is not None:
        out.kv_fraction = out.kv_bytes / base.kv_bytes if base.kv_bytes else 1.0
        if out.ppl is not None and base.ppl:
            out.ppl_ratio = out.ppl / base.ppl
    elif out.ppl is not None:
        out.ppl_ratio = 1.0
    return out


def run_sample(
    model: Any,
    tokenizer: Any,
    info: ModelInfo,
    sample: Sample,
    configs: list[Config],
    steps: int,
    chat: bool = False,
    map_ratio: float | None = None,
    reuse_prefill: bool = True,
) -> SampleRun:
    """Every configuration on ``sample``; the context is prefilled once (``reuse_prefill=False``: once
    per configuration, the way harnesses without prefix reuse do it, for the benchmark)."""
    ctx, tail = encode(tokenizer, sample, chat)
    pre = prefill(model, tokenizer, info, ctx)
    prefill_seconds, outcomes, plans = pre.seconds, [], {}
    stops = stop_tokens(tokenizer, model)
    for cfg in configs:
        if not reuse_prefill and outcomes:
            pre = prefill(model, tokenizer, info, ctx)
            prefill_seconds += pre.seconds
        t0 = time.perf_counter()
        keep = cfg.keep(pre)
        if reuse_prefill and keep is not None:
            plans[cfg.name] = keep
        base = outcomes[0] if outcomes else None
        o = run_config(model, tokenizer, pre, cfg, keep, sample, tail, steps, base, stops)
        o.seconds = time.perf_counter() - t0  # choosing the tokens counts too
        outcomes.append(o)
    run = SampleRun(outcomes, prefill_seconds, pre.n_positions, warnings=budget_warnings(configs, pre.n_positions))
    if map_ratio is not None and sample.kind == "qa":
        run.map = eviction_map(pre, sample, configs, plans, outcomes, map_ratio)
    return run


def budget_warnings(configs: list[Config], n: int) -> list[str]:
    """Each strategy's own guardrail messages for an ``n``-token context (``Strategy.warnings``: a budget
    below its observation window, too few sinks, nothing kept, ...), prefixed by the configuration."""
    return [f"{cfg.name}: {w}" for cfg in configs for w in cfg.warnings(n)]


def eviction_map(
    pre: Prefill,
    sample: Sample,
    configs: list[Config],
    plans: dict[str, torch.Tensor],
    outcomes: list[Outcome],
    ratio: float,
) -> EvictionMap:
    """Per token, the share of (layer, kv_head) slots that kept it, for each strategy at ``ratio``."""
    tokens = list(pre.snapshot.tokens)
    correct = {o.config: o.correct for o in outcomes}
    shares, ok = {}, {}
    for cfg in configs:
        if cfg.ratio == ratio and cfg.name in plans:
            shares[cfg.method] = [round(float(x), 4) for x in plans[cfg.name].float().mean(dim=(0, 1))]
            ok[cfg.method] = correct.get(cfg.name)
    return EvictionMap(sample.task, sample.index, ratio, tokens, needle_tokens(tokens, sample), shares, ok)


def needle_tokens(tokens: list[str], sample: Sample) -> tuple[int, int] | None:
    """Token span ``[first, last + 1)`` covering the needle's characters (by cumulative token text)."""
    span = sample.needle_span()
    if span is None:
        return None
    text = "".join(tokens)
    offset = text.find(sample.context[:40]) if sample.context[:40] in text else 0
    a, b = span[0] + offset, span[1] + offset
    pos, first, last = 0, None, None
    for i, t in enumerate(tokens):
        end = pos + len(t)
        if end > a and pos < b:
            first = i if first is None else first
            last = i
        pos = end
    return None if first is None else (first, last + 1)
