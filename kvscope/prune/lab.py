"""Baseline against pruned: continuation perplexity, latency and KV bytes, measured the same way.

Both runs use the same attention function (``kvscope.prune.evict_attention``) and a cache built from the
same prefill; the baseline's cache keeps everything, the pruned run's cache has the plan applied.
Latency is the median over ``repeats`` (after one warm-up) of ``time.perf_counter`` around (a) the
continuation forward pass against the cache and (b) greedy decoding of ``decode_tokens`` tokens
after it, one forward pass per token. Building the cache copy is not timed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kvscope.errors import UsageError
from kvscope.kit.results import ResultMixin
from kvscope.models import ModelInfo
from kvscope.prune.engine import evicting, resolve_strategy
from kvscope.prune.evict import (
    Prefill,
    build_cache,
    continuation_logits,
    decode,
    perplexity,
    structural_keep,
    token_logliks,
)
from kvscope.prune.strategies import Strategy
from kvscope.quant import KiviSpec


@dataclass
class Plan:
    """What to do to the prompt's cache: a keep plan ``[layer, kv_head, position]`` and/or KIVI."""

    label: str
    keep: torch.Tensor | None = None
    quant: KiviSpec | None = None


@dataclass
class Measured:
    """One configuration's numbers. ``loglik``: summed log-probability (nats) of the scored tokens;
    ``kv_bytes``: the prompt cache as kept (``kv_bytes_fp16``: stored in float16); ``held_bytes``: what
    the simulation allocates; latencies in milliseconds (None when not timed): the median, and
    ``*_ms_range`` its spread ``[min, max]`` over the repeats."""

    label: str
    ppl: float
    loglik: float
    kv_bytes: int
    kept_entries: int
    masked_layers: list[int]
    held_bytes: int = 0
    kv_bytes_fp16: int = 0
    continuation_ms: float | None = None
    decode_ms: float | None = None
    continuation_ms_range: tuple[float, float] | None = None
    decode_ms_range: tuple[float, float] | None = None
    logliks: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "logliks"}


def pct(new: float | None, old: float | None) -> float | None:
    """Percent change from ``old`` to ``new`` (None when either is missing or ``old`` is 0)."""
    if new is None or old is None or old == 0:
        return None
    return 100.0 * (new - old) / old


def check_indices(info: ModelInfo, layers: list[int] | None, heads: list[int] | None) -> None:
    """One-line ``UsageError`` for a layer outside ``0..L-1`` or a head at or above ``kv_heads``."""
    for layer in layers or []:
        if not 0 <= layer < info.layers:
            raise UsageError(
                f"layer {layer} is out of range: this model has {info.layers} layers, "
                f"valid indices 0..{info.layers - 1}"
            )
    for head in heads or []:
        if not 0 <= head < info.kv_heads:
            raise UsageError(
                f"head {head} is out of range: heads takes kv_head indices and this model has "
                f"{info.kv_heads} kv_heads (GQA: each serves {info.group_size} of its {info.q_heads} query "
                f"heads), valid indices 0..{info.kv_heads - 1}",
                param="heads",
            )


def make_plan(
    info: ModelInfo,
    pre: Prefill,
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    strategy: str | Strategy | None = None,
    ratio: float = 0.5,
    quant: KiviSpec | None = None,
) -> Plan:
    """Combine layer/head eviction, a token strategy (a registered name, or a strategy made with
    ``make_strategy``) and quantization into one plan (evictions AND)."""
    check_indices(info, layers, heads)
    parts, keep = [], None
    if layers or heads:
        keep = structural_keep(info, pre.n_positions, layers, heads)
        parts += [f"layers {','.join(map(str, layers))}"] if layers else []
        parts += [f"kv_heads {','.join(map(str, heads))}"] if heads else []
    if strategy:
        cfg = evicting(resolve_strategy(strategy, {}), ratio)
        kept = cfg.keep(pre)
        keep = kept if keep is None else keep & kept
        parts.append(f"{cfg.strategy.label} {cfg.ratio:g}")
    if quant is not None:
        parts.append(quant.label)
    if not parts:
        raise UsageError("nothing to prune: pass layers, heads, strategy or quantize")
    return Plan(" + ".join(parts), keep, quant)


def measure(model: Any, pre: Prefill, cont_ids: torch.Tensor, plan: Plan) -> Measured:
    """Score ``cont_ids`` ``[1, C]`` against ``pre``'s cache with ``plan`` applied (not timed)."""
    pc = build_cache(model.config, pre, plan.keep, quant=plan.quant)
    ll = token_logliks(continuation_logits(model, pc, cont_ids, pre.n_positions), cont_ids)
    return Measured(
        plan.label,
        perplexity(ll),
        float(ll.sum()),
        pc.kv_bytes,
        pc.kept_entries,
        sorted(pc.masks),
        pc.held_bytes,
        pc.kv_bytes_fp16,
        logliks=ll,
    )


def time_plans(
    model: Any, pre: Prefill, cont_ids: torch.Tensor, plans: list[Plan], repeats: int, decode_tokens: int
) -> list[tuple[list[float], list[float]]]:
    """Per plan, the milliseconds of each timed continuation pass and of decoding ``decode_tokens`` after it.

    The plans are run in turn within each repeat (so a noisy moment hits all of them), after one
    untimed warm-up round.
    """
    start = pre.n_positions
    times: list[list[tuple[float, float]]] = [[] for _ in plans]
    for i in range(repeats + 1):
        for j, plan in enumerate(plans):
            pc = build_cache(model.config, pre, plan.keep, quant=plan.quant)
            t0 = time.perf_counter()
            logits = continuation_logits(model, pc, cont_ids, start)
            t1 = time.perf_counter()
            decode(model, pc, int(logits[-1].argmax()), start + cont_ids.shape[1], decode_tokens)
            t2 = time.perf_counter()
            if i:
                times[j].append((1e3 * (t1 - t0), 1e3 * (t2 - t1)))
    return [([t[0] for t in ts], [t[1] for t in ts]) for ts in times]


def set_timings(m: Measured, continuation: list[float], decoding: list[float]) -> None:
    """Store the medians and ``[min, max]`` spreads of the timed runs on ``m``."""
    m.continuation_ms, m.decode_ms = statistics.median(continuation), statistics.median(decoding)
    m.continuation_ms_range = (min(continuation), max(continuation))
    m.decode_ms_range = (min(decoding), max(decoding))


def overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    """Whether two ``[min, max]`` spreads overlap (a difference of medians within the noise)."""
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass(repr=False)
class PruneResult(ResultMixin):
    """Baseline and pruned runs of one plan on one prompt and continuation, with the setting they were
    measured in. One text is an example, not a ranking: compare strategies with ``kvscope bench``.

    ``changes()``: percent change pruned vs baseline; ``within_spread()``: for each latency, whether the
    two runs' ``[min, max]`` spreads overlap (the difference is then within the noise). ``prefills``:
    prefill forward passes counted while measuring (one: every configuration reuses it).
    """

    model: str
    plan: str
    baseline: Measured
    pruned: Measured
    prompt_tokens: int
    continuation_tokens: int
    scored_tokens: int
    repeats: int
    decode_tokens: int
    torch_threads: int
    kv_heads: int
    group_size: int
    q_heads: int = 0
    cache_dtype: str = ""
    prefill_seconds: float = 0.0
    prefills: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def changes(self) -> dict[str, float | None]:
        """Percent change pruned vs baseline of perplexity, latencies and KV bytes."""
        b, p = self.baseline, self.pruned
        return {
            "ppl": pct(p.ppl, b.ppl),
            "continuation_ms": pct(p.continuation_ms, b.continuation_ms),
            "decode_ms": pct(p.decode_ms, b.decode_ms),
            "kv_bytes": pct(p.kv_bytes, b.kv_bytes),
            "kv_bytes_fp16": pct(p.kv_bytes_fp16, b.kv_bytes_fp16),
        }

    def within_spread(self) -> dict[str, bool | None]:
        """Per latency, True when baseline and pruned ``[min, max]`` overlap (None when not timed)."""
        b, p = self.baseline, self.pruned
        return {
            "continuation_ms": overlap(b.continuation_ms_range, p.continuation_ms_range),
            "decode_ms": overlap(b.decode_ms_range, p.decode_ms_range),
        }

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("baseline", "pruned")}
        return {
            **d,
            "baseline": self.baseline.to_dict(),
            "pruned": self.pruned.to_dict(),
            "change_pct": self.changes(),
            "within_spread": self.within_spread(),
        }

    command = "prune"

    def summary(self) -> list[tuple[str, Any]]:
        ch, b, p = self.changes(), self.baseline, self.pruned
        return [
            ("plan", self.plan),
            ("model", self.model),
            ("ppl", f"{b.ppl:.3f} -> {p.ppl:.3f} ({ch['ppl']:+.1f} %)"),
            ("kv_bytes", f"{ch['kv_bytes']:+.1f} %"),
            ("note", "one text, an example, not a ranking"),
        ]

    def details(self) -> list[tuple[str, Any]]:
        from kvscope.prune.summaries import prune_details

        return prune_details(self)

    def notes(self) -> list[str]:
        from kvscope.prune.summaries import prune_notes

        return prune_notes(self)

    def write(self, folder: Path) -> list[str]:
        """``prune.json``: the measurements (``kvscope prune`` prints them as a table)."""
        from kvscope.fileio import write_json

        write_json(folder / "prune.json", self.to_dict())
        return ["prune.json"]


def compare(
    model: Any,
    info: ModelInfo,
    pre: Prefill,
    cont_ids: torch.Tensor,
    plan: Plan,
    repeats: int = 5,
    decode_tokens: int = 32,
) -> PruneResult:
    """Measure the baseline (nothing evicted) and ``plan`` on the same prefill; timings interleaved."""
    base, pruned = measure(model, pre, cont_ids, Plan("baseline")), measure(model, pre, cont_ids, plan)
    if repeats > 0:
        timed = time_plans(model, pre, cont_ids, [Plan("baseline"), plan], repeats, decode_tokens)
        for m, (cont_ms, dec_ms) in zip((base, pruned), timed):
            set_timings(m, cont_ms, dec_ms)
    return PruneResult(
        info.name,
        plan.label,
        base,
        pruned,
        pre.n_positions,
        int(cont_ids.shape[1]),
        int(cont_ids.shape[1]) - 1,
        repeats,
        decode_tokens,
        torch.get_num_threads(),
        info.kv_heads,
        info.group_size,
        info.q_heads,
        str(pre.keys[0].dtype).replace("torch.", ""),
        pre.seconds,
        pre.forward_passes,
    )
