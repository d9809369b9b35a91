"""Decode-time compression judged: per-token log-perplexity along a long text while the KV cache is held
to a fixed budget, the experiment of StreamingLLM (Xiao et al., "Efficient Streaming Language Models with
Attention Sinks", ICLR 2024, Fig. 3) on any causal LM.

Each stream (the ``streaming`` task of ``kvscope.bench.tasks``: the built-in texts joined in a rotated
order, cut to ``context_tokens`` tokens) is fed teacher-forced through ``ks.compress(model, strategy,
budget=B)``: the first ``B`` tokens in one forward, then ``CHUNK`` tokens per forward, which
``ks.compress`` takes as one step per token (each token's eviction, then its query, as if it came alone),
so the NLL of each next token (nats) is that of a one-token-per-step decode, to float rounding. ``dense``
is one forward without compression. Streams run side by side as the rows of one batch (equal lengths, no
padding), so each row's eviction is its own.

Configurations (``CONFIGS``): ``window`` (the most recent ``B`` tokens, no sinks), ``streaming`` (4 sinks
+ the most recent ``B - 4``), ``h2o``, ``tova``, ``knorm`` and ``random`` (``kvscope.compress.decoding``).
Unlike the paper's StreamingLLM, positions are not re-assigned inside the cache: every token keeps its
true RoPE position (the dense masked cache of ``ks.compress``), and cost per step does not fall with the
budget.

Shapes: ``nll[label]`` float64 ``[stream, T - 1]``, entry ``t`` the NLL of position ``t + 1`` given
positions ``0..t`` as the cache holds them. Eviction starts at step ``t = B`` (the cache would hold
``B + 1`` tokens), so a row's numbers cover ``nll[:, B:]``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kvscope import __version__
from kvscope.bench.streaming_result import Run, StreamingResult, StreamRow
from kvscope.errors import UsageError

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {  # label -> (ks.compress strategy, settings)
    "window": ("streaming", {"sinks": 0}),
    "streaming": ("streaming", {"sinks": 4}),
    "h2o": ("h2o", {}),
    "tova": ("tova", {}),
    "knorm": ("knorm", {}),
    "random": ("random", {}),
}
DENSE = "dense"
DEFAULT_STRATEGIES = ("window", "streaming", "h2o", "tova", "knorm")
DEFAULT_BUDGETS = (64, 128, 256)
DEFAULT_SAMPLES = 4  # streams, run as the rows of one batch
DEFAULT_TOKENS = 384
MIN_TOKENS, MAX_TOKENS = 16, 8192
MAX_SAMPLES = 64
MAP_STEPS = 16  # eviction map: steps recorded per strategy (smallest budget, stream 0)
CHUNK = 128  # tokens per forward after the prompt (ks.compress still evicts token by token)


def _positive_int(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{param} must hold positive integers, got {value!r}", param=param)
    return int(value)


def parse_budgets(text: str) -> list[int]:
    """``"64,128,256"`` -> ``[64, 128, 256]``; one-line ``UsageError`` naming ``budgets`` otherwise."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"budgets takes a comma-separated list of positive integers, got {text!r}", param="budgets")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"budgets must hold positive integers such as 64,128; got {text!r}", param="budgets") from None
    return [_positive_int(v, "budgets") for v in values]


def validate(budgets: Sequence[int], strategies: Sequence[str], samples: int, context_tokens: int) -> None:
    """Check every option before a model is loaded (one-line ``UsageError`` naming the parameter)."""
    if not isinstance(budgets, (list, tuple)) or not budgets:
        raise UsageError(f"budgets must be a non-empty list of positive integers, got {budgets!r}", param="budgets")
    for b in budgets:
        _positive_int(b, "budgets")
    if len(set(budgets)) != len(budgets):
        raise UsageError(f"budgets lists a budget twice: {list(budgets)}", param="budgets")
    unknown = [s for s in strategies if s not in CONFIGS]
    if unknown or not strategies:
        raise UsageError(
            f"strategies for the streaming task are {', '.join(CONFIGS)} (dense always runs); got {list(strategies)}",
            param="strategies",
        )
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"samples (streams) must be 1..{MAX_SAMPLES}, got {samples!r}", param="samples")
    if isinstance(context_tokens, bool) or not isinstance(context_tokens, int):
        raise UsageError(f"context_tokens must be an integer, got {context_tokens!r}", param="context_tokens")
    if not MIN_TOKENS <= context_tokens <= MAX_TOKENS:
        raise UsageError(
            f"context_tokens for the streaming task must be {MIN_TOKENS}..{MAX_TOKENS}, got {context_tokens}",
            param="context_tokens",
        )


def stream_ids(tokenizer: Any, samples: int, context_tokens: int, seed: int = 0) -> torch.Tensor:
    """Token ids ``[samples, context_tokens]`` of the ``streaming`` task's streams; ``UsageError`` when the
    built-in texts hold fewer tokens than asked (with this tokenizer)."""
    from kvscope.bench.tasks import generate

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    rows = [tokenizer(s.context).input_ids for s in generate("streaming", samples, context_tokens, count, seed)]
    have = min(len(r) for r in rows)
    if have < context_tokens:
        raise UsageError(
            f"context_tokens {context_tokens} is more than the built-in texts hold with this tokenizer "
            f"({have} tokens); use at most {have}",
            param="context_tokens",
        )
    return torch.tensor([r[:context_tokens] for r in rows], dtype=torch.int64)


def _compressor(model: Any, label: str, budget: int | None) -> Any:
    if label == DENSE:
        return contextlib.nullcontext()
    from kvscope.compress import compress

    name, settings = CONFIGS[label]
    return compress(model, name, budget=budget, **settings)


def _shares(compressor: Any) -> np.ndarray:
    """Share of (layer, kv_head) slots of stream 0 holding each position, ``[slots]``."""
    keep = compressor.session.keep
    return torch.stack([keep[layer][0].float().cpu() for layer in sorted(keep)]).mean((0, 1)).numpy()


def run_config(
    model: Any,
    ids: torch.Tensor,
    label: str,
    budget: int | None,
    map_steps: Sequence[int] = (),
    prefill: int | None = None,
    chunk: int = CHUNK,
) -> Run:
    """Feed ``ids`` ``[stream, T]`` through ``label``'s compressor (``dense``: none): the first ``prefill``
    tokens in one forward (default: ``min(budget, T)``, dense ``T``), then the rest ``chunk`` tokens per
    forward, cut at each of ``map_steps``. Under a budget ``ks.compress`` takes a forward's tokens one step
    each, so any ``chunk`` gives the NLL of one token per forward (``chunk=1``), to float rounding."""
    from kvscope.compat import forward, output_cache

    rows, total = ids.shape
    first = min(total, prefill or budget or total)
    nll = np.zeros((rows, total - 1))
    held: list[int] | None = None if label == DENSE else []
    shares = np.zeros((len(map_steps), total), dtype=np.float32)
    wanted = {step: i for i, step in enumerate(map_steps)}
    t0 = time.perf_counter()
    with torch.inference_mode(), _compressor(model, label, budget) as c:
        cache, start = None, 0
        for stop in _stops(first, total - 1, chunk, map_steps):  # the last token predicts nothing: not fed
            out = forward(model, cache, input_ids=ids[:, start:stop], use_cache=True)
            cache = output_cache(out)
            got = _nll(out.logits, ids[:, start + 1 : stop + 1])
            nll[:, start : start + got.shape[1]] = got
            if held is not None and start == 0:
                held += [int(c.held().max())] * first  # the prompt's positions: as the prefill left the cache
            if held is not None and stop - 1 in wanted:
                shares[wanted[stop - 1], :stop] = _shares(c)
            start = stop
        if held is not None:
            held = (held + c.session.step_held())[: total - 1]  # then one entry per token fed (a step)
    figure_map = {"steps": list(map_steps), "held": shares} if map_steps else None
    return Run(label, budget, nll, held, figure_map, time.perf_counter() - t0)


def _stops(first: int, last: int, chunk: int, cuts: Sequence[int]) -> list[int]:
    """Ends (exclusive) of the forwards feeding positions ``0 .. last - 1``: ``first``, then ``chunk`` at a
    time, also ending after each position in ``cuts``."""
    if first >= last:
        return [first]
    return sorted(set(range(first, last, chunk)) | {last} | {c + 1 for c in cuts if first < c + 1 < last})


def _nll(logits: torch.Tensor, target: torch.Tensor, piece: int = 256) -> np.ndarray:
    """NLL (nats) float64 ``[stream, n]`` of ``target`` ``[stream, n]`` under ``logits`` ``[stream, >= n,
    vocab]`` (position ``i`` predicts ``target[:, i]``), a ``piece`` of positions at a time (memory)."""
    n, parts = target.shape[1], []
    for s in range(0, n, piece):
        logp = torch.log_softmax(logits[:, s : min(s + piece, n)].float(), dim=-1)
        parts.append(-logp.gather(2, target[:, s : s + piece, None].to(logp.device))[..., 0])
    return torch.cat(parts, 1).double().cpu().numpy() if parts else np.zeros((target.shape[0], 0))


def map_steps(total: int, budget: int, count: int = MAP_STEPS) -> list[int]:
    """``count`` steps (the position fed last) from the one that fills the cache (``budget - 1``) to the last."""
    first, last = min(budget, total) - 1, (total - 1 if budget >= total else total - 2)
    return sorted({int(round(x)) for x in np.linspace(first, last, count)})


def summarize(runs: list[Run], seed: int = 0) -> list[StreamRow]:
    """Rows from the runs (the first is dense); intervals as ``streaming_result.INTERVALS`` says."""
    from kvscope.stats import bootstrap_ci

    dense = runs[0].nll
    rows = []
    for run in runs:
        start = run.budget or 0
        own, ref = run.nll[:, start:], dense[:, start:]
        per_stream, diff = own.mean(1), (own - ref).mean(1)
        delta = bootstrap_ci(diff, seed=seed)
        rows.append(
            StreamRow(
                run.label if run.budget is None else f"{run.label}@{run.budget}",
                run.label,
                run.budget,
                int(own.shape[1]),
                bootstrap_ci(per_stream, seed=seed),
                float(ref.mean()),
                delta,
                float(np.exp(delta[0])),
                max(run.held) if run.held else None,
                run.seconds,
            )
        )
    return rows


def bench_streaming(
    model: Any,
    tokenizer: Any,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    strategies: Sequence[str] | None = None,
    samples: int = DEFAULT_SAMPLES,
    context_tokens: int = DEFAULT_TOKENS,
    seed: int = 0,
    model_name: str | None = None,
    quiet: bool = True,
) -> Any:
    """Per-token log-perplexity along ``samples`` streams of ``context_tokens`` tokens, one eviction
    step per token (``run_config``), for dense attention and each of ``strategies`` (``CONFIGS``; default
    ``DEFAULT_STRATEGIES``) at each cache budget in ``budgets`` (tokens per layer and kv_head). Returns a
    ``StreamingResult``.

    >>> import kvscope as ks                                                    # doctest: +SKIP
    >>> model, tok, _ = ks.load_model("embedded")                               # doctest: +SKIP
    >>> ks.bench_streaming(model, tok, budgets=[64], strategies=["window", "streaming"])  # doctest: +SKIP
    """
    from kvscope.errors import expect_model
    from kvscope.models import describe
    from kvscope.progress import track

    expect_model(model, tokenizer)
    strategies = list(DEFAULT_STRATEGIES if strategies is None else strategies)
    budgets = list(budgets) if isinstance(budgets, (list, tuple)) else budgets
    validate(budgets, strategies, samples, context_tokens)
    info = describe(model, model_name)
    if info.max_positions and context_tokens > info.max_positions:
        raise UsageError(
            f"context_tokens {context_tokens} exceeds the model's {info.max_positions} positions",
            param="context_tokens",
        )
    ids = stream_ids(tokenizer, samples, context_tokens, seed).to(next(model.parameters()).device)
    plan = [(DENSE, None)] + [(s, b) for b in sorted(budgets) for s in strategies]
    smallest = min(budgets)
    t0 = time.perf_counter()
    runs = []
    for label, budget in track(plan, f"streaming: {samples} streams x {context_tokens} tokens", quiet=quiet):
        steps = map_steps(context_tokens, budget) if budget == smallest else ()
        runs.append(run_config(model, ids, label, budget, steps))
    settings = {
        "tasks": ["streaming"],
        "samples": samples,
        "context_tokens": context_tokens,
        "budgets": sorted(budgets),
        "strategies": strategies,
        "configs": {s: {"strategy": CONFIGS[s][0], **CONFIGS[s][1]} for s in strategies},
        "seed": seed,
        "positions": "true positions (dense masked cache; StreamingLLM's paper re-assigns positions in the cache)",
    }
    model_dict = dict(info.to_dict(), name=model_name or info.name)
    return StreamingResult(
        model_dict, settings, summarize(runs, seed), runs, ids.cpu(), time.perf_counter() - t0, __version__
    )
