"""The library entry points of prune: plain functions taking a user's own model and tokenizer.

>>> import kvscope as ks                                          # doctest: +SKIP
>>> model, tok, _ = ks.load_model("embedded")                     # doctest: +SKIP
>>> ks.compare_pruning(model, tok, "The key is 4471. ...", " The key is 4471.", "snapkv", 0.5, window=64)
PruneResult('snapkv(window=64) 0.5' on ...: ppl ... -> ... (...), KV bytes -50.0 %; one text, ...)

Each one validates every argument before it runs the model, prefills the prompt once and returns a
result dataclass (``PruneResult``, ``SweepResult``, ``ScanResult``, ``LooResult``). One prompt and
one continuation make an example, not a ranking: ``kvscope bench`` compares strategies over many
samples with intervals.
"""

from __future__ import annotations

from typing import Any

import torch

from kvscope.errors import UsageError
from kvscope.models import ModelInfo, describe
from kvscope.prune.engine import SWEEP, build_grid, check_ratio, resolve_strategy
from kvscope.prune.evict import Prefill, count_forwards, prefill
from kvscope.prune.lab import PruneResult, check_indices, compare, make_plan
from kvscope.prune.loo import LooResult, leave_one_out
from kvscope.prune.scan import KINDS, ScanResult, encode_texts, scan
from kvscope.prune.strategies import Strategy
from kvscope.prune.strategies.kvpress_adapter import attached
from kvscope.prune.sweep import SweepResult, sweep
from kvscope.quant import KiviSpec, parse_spec


def _info(model: Any, info: ModelInfo | None) -> ModelInfo:
    return info or describe(model)


def _prefill(
    model: Any, tokenizer: Any, info: ModelInfo, prompt: str | None, continuation: str | None, truncate: bool
) -> tuple[Prefill, torch.Tensor]:
    ids, cont = encode_texts(tokenizer, info, prompt, continuation, truncate)
    return prefill(model, tokenizer, info, ids), cont


def compare_pruning(
    model: Any,
    tokenizer: Any,
    prompt: str | None = None,
    continuation: str | None = None,
    strategy: str | Strategy | None = "snapkv",
    ratio: float = 0.5,
    *,
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    quantize: str | KiviSpec | None = None,
    repeats: int = 5,
    decode_tokens: int = 32,
    info: ModelInfo | None = None,
    truncate: bool = False,
    **strategy_kwargs: Any,
) -> PruneResult:
    """Prefill ``prompt`` once, evict a fraction ``ratio`` of it with ``strategy`` (and/or ``layers``,
    kv_``heads``, KIVI ``quantize``), score ``continuation`` against the pruned cache and the baseline.

    ``strategy_kwargs`` are the strategy's settings (``window=64``, ``rounding="floor"`` ...). ``None``
    texts use kvscope's default example. Latencies: median and ``[min, max]`` of ``repeats`` interleaved
    runs after a warm-up (0 = not timed). ``repeats`` defaults to 5, so a call times the baseline and the
    pruned cache five times each (plus ``decode_tokens`` greedy steps per run); pass ``repeats=1`` for a
    quick look. Returns a ``PruneResult``; its ``warnings`` are the strategy's guardrails for this budget.
    """
    from kvscope.errors import expect_model

    expect_model(model, tokenizer)
    info = _info(model, info)
    chosen = resolve_strategy(strategy, strategy_kwargs)
    if chosen is not None:
        check_ratio(ratio)
    spec = parse_spec(quantize) if isinstance(quantize, str) else quantize
    check_indices(info, layers, heads)
    if repeats < 0 or decode_tokens < 0:
        raise UsageError("repeats and decode_tokens must be at least 0")
    with count_forwards(model) as count:
        with attached(model, [chosen]):  # a kvpress press scores from the prefill's recorded attention inputs
            pre, cont = _prefill(model, tokenizer, info, prompt, continuation, truncate)
            plan = make_plan(info, pre, layers, heads, chosen, ratio, spec)
        result = compare(model, info, pre, cont, plan, repeats=repeats, decode_tokens=decode_tokens)
    result.prefills = count.prefills
    if chosen is not None:
        result.settings = {"strategy": chosen.name, "ratio": ratio, **chosen.settings()}
        result.warnings = chosen.warnings(pre.n_positions, ratio, layers=info.layers)
    return result


def sweep_pruning(
    model: Any,
    tokenizer: Any,
    prompt: str | None = None,
    continuation: str | None = None,
    *,
    ratios: tuple[float, ...] = SWEEP.ratios,
    strategies: list[str | Strategy] | None = None,
    quantize: tuple[str | KiviSpec, ...] = SWEEP.quantize,
    info: ModelInfo | None = None,
    truncate: bool = False,
    quiet: bool = False,
) -> SweepResult:
    """Every strategy (or ``strategies``) at every ratio, plus each KIVI spec, on one prefill: the engine's
    grid (``kvscope.prune.engine.build_grid``), checked before the model runs."""
    build_grid(strategies, ratios, quantize)
    info = _info(model, info)
    pre, cont = _prefill(model, tokenizer, info, prompt, continuation, truncate)
    return sweep(model, info.name, pre, cont, ratios, strategies, quantize, quiet=quiet)


def scan_pruning(
    model: Any,
    tokenizer: Any,
    prompt: str | None = None,
    continuation: str | None = None,
    kind: str = "layers",
    *,
    info: ModelInfo | None = None,
    truncate: bool = False,
    quiet: bool = False,
) -> ScanResult:
    """The perplexity change of evicting each layer (``kind="layers"``) or kv_head (``"heads"``) alone."""
    if kind not in KINDS:
        raise UsageError(f"unknown scan kind {kind!r}: use layers or heads")
    info = _info(model, info)
    pre, cont = _prefill(model, tokenizer, info, prompt, continuation, truncate)
    return scan(model, tokenizer, info, kind, pre=pre, cont_ids=cont, quiet=quiet)


def token_importance(
    model: Any,
    tokenizer: Any,
    prompt: str | None = None,
    continuation: str | None = None,
    *,
    info: ModelInfo | None = None,
    truncate: bool = False,
    quiet: bool = False,
) -> LooResult:
    """Leave-one-out ground truth: the continuation log-likelihood change when each prompt token goes."""
    from kvscope.prune.default_texts import DEFAULT_PROMPT

    info = _info(model, info)
    pre, cont = _prefill(model, tokenizer, info, prompt, continuation, truncate)
    return leave_one_out(model, info.name, prompt if prompt is not None else DEFAULT_PROMPT, pre, cont, quiet=quiet)
