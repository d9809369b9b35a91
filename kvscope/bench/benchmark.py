"""``bench(model, tokenizer, tasks=[...], samples=N, ...) -> BenchResult``: the library entry point."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kvscope import __version__
from kvscope.bench import shard
from kvscope.bench.sample_runner import EvictionMap, Outcome, run_sample
from kvscope.bench.settings import BenchSettings
from kvscope.bench.summary import Row, guardrails, summarize_outcomes
from kvscope.bench.tasks import TASKS, Sample, generate, get_task
from kvscope.errors import UsageError
from kvscope.kit.results import ResultMixin
from kvscope.models import ModelInfo, describe
from kvscope.progress import track
from kvscope.prune.engine import BENCH, build_grid, conventions
from kvscope.prune.evict import count_forwards
from kvscope.prune.strategies.kvpress_adapter import attached

DEFAULT_TASKS = BenchSettings.tasks  # each default lives in BenchSettings (kvscope.bench.settings)
DEFAULT_SAMPLES = BenchSettings.samples
DEFAULT_CONTEXT = BenchSettings.context_tokens
DATA_ANSWER_TOKENS = 16  # a user's answers may be words, not one number
MAP_SAMPLES = 4  # eviction maps: sample 0 of each QA task, at most this many


@dataclass(repr=False)
class BenchResult(ResultMixin):
    """A bench run: ``rows`` (the table, one per configuration), ``outcomes`` (one per sample x
    configuration), eviction ``maps``, ``warnings``, the settings, and what the run cost: ``prefills``
    and ``forwarded_tokens`` counted with a forward hook, ``prefill_seconds``, ``seconds`` in all."""

    model: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row]
    outcomes: list[Outcome]
    maps: list[EvictionMap] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    prefills: int = 0
    forwards: int = 0
    forwarded_tokens: int = 0
    prefill_seconds: float = 0.0
    seconds: float = 0.0
    processes: int = 1
    torch_threads: int = field(default_factory=torch.get_num_threads)
    kvscope_version: str = __version__

    def row(self, config: str) -> Row:
        return next(r for r in self.rows if r.config == config)

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Everything in the table plus the settings (``samples=True`` adds the per-sample outcomes)."""
        from kvscope.bench.bench_output import to_dict

        return to_dict(self, samples)

    command = "bench"

    def figures(self) -> dict[str, Any]:
        from kvscope.bench.bench_figures import bench_pareto

        return {"bench_pareto": bench_pareto(self)}

    def write(self, folder: Path) -> list[str]:
        """bench.json, samples.jsonl, bench_pareto.png and report.html."""
        from kvscope.bench.bench_output import write

        return write(self, folder)

    def summary(self) -> list[tuple[str, Any]]:
        return [
            ("model", self.model.get("name")),
            ("samples", len({(o.task, o.sample) for o in self.outcomes})),
            ("tasks", ", ".join(self.settings["tasks"])),
            ("configurations", len(self.rows)),
            ("prefills", self.prefills),
            ("warnings", len(self.warnings)),
        ]

    def details(self) -> list[tuple[str, Any]]:
        """One row per configuration: each accuracy (and the perplexity ratio) with its 95 % interval."""
        from kvscope.bench.bench_output import row_text

        return [(r.config, row_text(r)) for r in self.rows]

    def notes(self) -> list[str]:
        from kvscope.bench.summary import TIES

        return ["value [95 % interval]; * best compressed configuration, ~ tied with it: " + TIES, *self.warnings]


def load_data(data: str | Sequence[Sample]) -> list[Sample]:
    """Samples of a JSONL path or ``hf:`` spec (or the given list of ``Sample``)."""
    if not isinstance(data, str):
        return list(data)
    from kvscope.bench.data import load_samples

    return load_samples(data)


MAX_SAMPLES = 100_000  # generated samples per built-in task


def check_lengths(tokenizer: Any, data: list[Sample], info: ModelInfo, answer_tokens: int) -> None:
    """Refuse (``UsageError``) a data item whose context, question and answer room exceed the model's
    positions, before anything runs (it would otherwise run until killed)."""
    limit = info.max_positions
    if not limit:
        return
    for s in data:
        n = sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in (s.context, s.question))
        if n + answer_tokens > limit:
            raise UsageError(
                f"data item {s.index + 1} has {n:,} tokens of context and question; with {answer_tokens} for the "
                f"answer that exceeds the model's {limit:,} positions: shorten it",
                param="data",
            )


def validate(
    tasks: Sequence[str],
    samples: int | None,
    context_tokens: int,
    max_answer_tokens: int | None,
    info: ModelInfo | None = None,
) -> None:
    """Check the cheap options (before any model is loaded when ``info`` is ``None``)."""
    for t in tasks:
        if get_task(t).kind == "stream":  # decodetask: its own loop and result (kvscope.bench.streaming)
            raise UsageError(f"task {t} runs alone through kvscope.bench.streaming.bench_streaming", param="tasks")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
        raise UsageError(f"samples must be at least 1, got {samples!r}", param="samples")
    if tasks and samples is not None and samples > MAX_SAMPLES:  # a data file caps the count by its own length
        raise UsageError(f"samples must be at most {MAX_SAMPLES:,} per built-in task, got {samples:,}", param="samples")
    if max_answer_tokens is not None and max_answer_tokens < 1:
        raise UsageError(f"max_answer_tokens must be at least 1, got {max_answer_tokens}", param="max_answer_tokens")
    needs = [TASKS[t] for t in tasks if TASKS[t].kind == "qa"]
    for t in needs:
        if context_tokens < t.min_tokens:
            raise UsageError(
                f"context_tokens {context_tokens} is too small for {t.name}: it needs at least {t.min_tokens}",
                param="context_tokens",
            )
    if info is not None and info.max_positions and needs and context_tokens + 64 > info.max_positions:
        raise UsageError(
            f"context_tokens {context_tokens} plus the question and answer exceeds the model's "
            f"limit of {info.max_positions} positions (use at most {info.max_positions - 64})",
            param="context_tokens",
        )


def make_samples(
    tokenizer: Any, tasks: Sequence[str], samples: int, context_tokens: int, seed: int, data: list[Sample] | None = None
) -> list[Sample]:
    """The run's samples: ``samples`` generated samples of each built-in task, then every ``data`` sample."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    out = [s for t in tasks for s in generate(t, samples, context_tokens, count, seed)]
    return out + list(data or [])


def _check_arguments(model: Any, tokenizer: Any, tasks: Any, strategies: Any, ratios: Any, quantize: Any) -> None:
    """``ParameterTypeError`` for a model or tokenizer that is not one, or a single string where a list goes."""
    from kvscope.errors import expect, expect_model

    expect_model(model, tokenizer)
    for name, value, example in (
        ("tasks", tasks, "['passkey']"),
        ("strategies", strategies, "['snapkv']"),
        ("ratios", ratios, "[0.5]"),
        ("quantize", quantize, "['K4V2']"),
    ):
        if value is not None:
            expect(value, (list, tuple), name, f"a list such as {example}")


def bench(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str] | None = DEFAULT_TASKS,
    samples: int | None = None,
    context_tokens: int = DEFAULT_CONTEXT,
    strategies: Sequence[str] | None = None,
    ratios: Sequence[float] = BENCH.ratios,
    quantize: Sequence[str] = BENCH.quantize,
    data: str | Sequence[Sample] | None = None,
    seed: int = 0,
    chat: bool = False,
    max_answer_tokens: int | None = None,
    settings: dict[str, Any] | None = None,
    model_name: str | None = None,
    quiet: bool = True,
    reuse_prefill: bool = True,
) -> BenchResult:
    """Judge KV-cache compression on tasks over many samples, with 95 % intervals.

    Each sample's context is prefilled once; every configuration (baseline, each ``strategies`` x
    ``ratios``, each KIVI spec in ``quantize``) compresses a copy of that cache and answers the question
    greedily from it, until ``max_answer_tokens``, the tokenizer's EOS / end-of-turn token, or the answer's
    verdict is settled (``kvscope.bench.verdict``: the same verdicts as decoding every token). ``tasks``:
    names from ``TASKS`` (``None`` or ``[]`` with ``data``: the data file only); ``samples``: per built-in
    task (default 5) and, when given, the first ``samples`` of ``data`` (default: all of it); ``data``: a
    JSONL file (``{"context", "question", "answer"}`` lines) or ``hf:NAME[:split]``. Prompts are raw
    text (context, then question) unless ``chat``: then context and question are the user's turn of the
    model's chat template and a built-in task's answer primer starts the assistant's turn (QA only;
    text samples stay raw);
    ``settings``: strategy settings (``{"window": 64, "rounding": "floor"}``, ``kvscope.prune.engine``'s
    ``CONVENTIONS`` and any other), each given to every strategy that declares it; one that none of
    ``strategies`` declares is refused. ``ratios`` and ``quantize`` default to the engine's ``BENCH``
    (one ratio). Run under ``accelerate launch`` the samples are sharded across processes and every
    process returns the same gathered result.

    >>> import kvscope as ks                                                   # doctest: +SKIP
    >>> model, tok, _ = ks.load_model("embedded")                              # doctest: +SKIP
    >>> ks.bench(model, tok, tasks=["passkey"], samples=20, strategies=["snapkv"])  # doctest: +SKIP
    """
    _check_arguments(model, tokenizer, tasks, strategies, ratios, quantize)
    tasks = list(tasks or ([] if data else DEFAULT_TASKS))
    validate(tasks, samples, context_tokens, max_answer_tokens)
    per_task = DEFAULT_SAMPLES if samples is None else samples
    configs, applied = build_grid(strategies, ratios, quantize, settings)
    info = describe(model, model_name)
    validate(tasks, samples, context_tokens, max_answer_tokens, info)
    user = load_data(data) if data else None
    used = user[:samples] if user and samples is not None else user
    if used:
        check_lengths(tokenizer, used, info, max_answer_tokens or DATA_ANSWER_TOKENS)
    all_samples = make_samples(tokenizer, tasks, per_task, context_tokens, seed, used)
    rank, size = shard.world()
    t0 = time.perf_counter()
    runs, count = run_all(
        model,
        tokenizer,
        info,
        shard.shard(list(enumerate(all_samples)), rank, size),
        configs,
        max_answer_tokens,
        chat,
        ratios,
        quiet,
        reuse_prefill,
    )
    gathered = shard.gather((runs, asdict(count)), size)
    shard.barrier_done(size)
    methods = [c.method for c in configs]
    record = {
        "tasks": tasks + (["data"] if user else []),
        "samples": per_task,
        "data_samples": len(used) if user else None,
        "data_lines": len(user) if user else None,
        "context_tokens": context_tokens,
        "strategies": sorted(set(methods) - {"baseline", "kivi"}, key=methods.index),
        "ratios": list(ratios),
        "quantize": [c.quant.label for c in configs if c.quant],
        "seed": seed,
        "chat": chat,
        "prompt_format": prompt_format(chat),
        "data": data if isinstance(data, str) else ("samples" if data else None),
        "max_answer_tokens": max_answer_tokens,
        "strategy_settings": {k: v for taken in applied.values() for k, v in taken.items()},
        "settings_applied": applied,
        "conventions": conventions(configs),
        "reuse_prefill": reuse_prefill,
    }
    return assemble(gathered, configs, applied, info, model_name, record, time.perf_counter() - t0, size)


def prompt_format(chat: bool) -> str:
    """The prompt convention, recorded in bench.json."""
    if chat:
        return (
            "chat template: context + question as the user's turn, a built-in task's answer primer starting "
            "the assistant's turn (kvpress's answer_prefix); text samples stay raw"
        )
    return "raw text, no chat template: context, then question (kvpress's pipeline applies the template by default)"


def run_all(model, tokenizer, info, indexed, configs, max_answer_tokens, chat, ratios, quiet, reuse_prefill):
    """Run this process's samples; returns ``([(index, SampleRun)], ForwardCount)`` (``count_forwards``)."""
    map_ratio = 0.5 if 0.5 in ratios else (list(ratios)[len(ratios) // 2] if ratios else None)
    runs = []
    label = f"bench: {len(indexed)} samples x {len(configs)} configurations"
    presses = attached(model, [c.strategy for c in configs])  # kvpress presses: record attention inputs
    with count_forwards(model) as count, presses:
        for i, s in track(indexed, label, total=len(indexed), quiet=quiet):
            steps = max_answer_tokens or (TASKS[s.task].answer_tokens if s.task in TASKS else DATA_ANSWER_TOKENS)
            draw = map_ratio if (s.kind == "qa" and s.index == 0) else None
            runs.append((i, run_sample(model, tokenizer, info, s, configs, steps, chat, draw, reuse_prefill)))
    return runs, count


def assemble(gathered, configs, applied, info, model_name, settings, seconds, size) -> BenchResult:
    """Merge every process's runs in sample order into one ``BenchResult``."""
    runs = sorted((r for part, _ in gathered for r in part), key=lambda r: r[0])
    outcomes = [o for _, run in runs for o in run.outcomes]
    counts = [c for _, c in gathered]
    rows = summarize_outcomes(outcomes, configs, settings["seed"])
    maps = [run.map for _, run in runs if run.map is not None][:MAP_SAMPLES]
    warns = guardrails(rows, outcomes, [w for _, run in runs for w in run.warnings])
    model = dict(info.to_dict(), name=model_name or info.name)
    return BenchResult(
        model,
        settings,
        rows,
        outcomes,
        maps,
        warns,
        sum(c["prefills"] for c in counts),
        sum(c["forwards"] for c in counts),
        sum(c["tokens"] for c in counts),
        sum(run.prefill_seconds for _, run in runs),
        seconds,
        size,
    )
