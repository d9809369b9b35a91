"""Run methods over problems in batches (interleaved), summarise them, write ``results.json`` + ``trace.jsonl``."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from kvscope.errors import UsageError
from kvscope.fileio import to_jsonable, write_json, write_text
from kvscope.mas.methods import METHODS, MasSettings, ProblemRun
from kvscope.mas.problems import Problem


def method_names(method: str) -> list[str]:
    """``"all"`` -> every method in ``METHODS`` order; otherwise the one named method."""
    if method == "all":
        return list(METHODS)
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}: use one of {', '.join(METHODS)} or all")
    return [method]


def run_batch(settings: MasSettings, method: str, batch: list[Problem]) -> list[ProblemRun]:
    """Run ``method`` on one batch; each run's ``seconds`` = the batch's wall time / its size."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        done = METHODS[method](settings, batch)
    seconds = (time.perf_counter() - t0) / len(batch)
    for run in done:
        run.seconds = seconds
    return done


def run_interleaved(
    settings: MasSettings, names: list[str], problems: list[Problem], quiet: bool = False
) -> dict[str, list[ProblemRun]]:
    """Every method on each batch of problems before the next batch, so that a load change on a shared
    machine hits every method alike; counted progress over batches on stderr (see kvscope.progress)."""
    from kvscope.progress import track

    size = settings.batch_size
    batches = [problems[i : i + size] for i in range(0, len(problems), size)]
    runs: dict[str, list[ProblemRun]] = {name: [] for name in names}
    for batch in track(batches, f"mas {'/'.join(names)}", quiet=quiet):
        for name in names:
            runs[name] += run_batch(settings, name, batch)
    return runs


def run_method(
    settings: MasSettings, method: str, problems: list[Problem], batch_size: int | None = None
) -> list[ProblemRun]:
    """One method on ``problems`` (``batch_size`` overrides the settings' batch size)."""
    if batch_size is not None:
        settings = MasSettings(
            settings.model, settings.tokenizer, settings.info, replace(settings.config, batch_size=batch_size)
        )
    return run_interleaved(settings, [method], problems, quiet=True)[method]


def summarize_runs(runs: list[ProblemRun]) -> dict[str, Any]:
    """Accuracy, generated tokens (per agent and overall, summed over problems), wall time and KV bytes
    handed between agents: ``kv_bytes_handed`` sums, over every hand-off, the cache the receiving agent
    gets (a growing cache counts again at each hand-off); ``kv_bytes_in_per_agent_per_problem`` is what is
    held at each hand-off, by receiving agent, as a mean per problem."""
    n = len(runs)
    per_agent: dict[str, int] = {}
    held: dict[str, int] = {}
    for run in runs:
        for a in run.agents:
            per_agent[a.role] = per_agent.get(a.role, 0) + a.generated_tokens
            held[a.role] = held.get(a.role, 0) + a.kv_bytes_in
    seconds = [r.seconds for r in runs]
    tokens = sum(r.generated_tokens for r in runs)
    return {
        "problems": n,
        "correct": sum(r.correct for r in runs),
        "accuracy": sum(r.correct for r in runs) / n if n else 0.0,
        "generated_tokens": tokens,
        "generated_tokens_per_problem": tokens / n if n else 0.0,
        "generated_tokens_per_agent": per_agent,
        "seconds_total": sum(seconds),
        "seconds_per_problem_mean": sum(seconds) / n if n else 0.0,
        "seconds_per_problem_median": statistics.median(seconds) if seconds else 0.0,
        "latent_seconds_total": sum(r.latent_seconds for r in runs),
        "latent_share_of_time": (sum(r.latent_seconds for r in runs) / sum(seconds)) if sum(seconds) else 0.0,
        "kv_bytes_handed": sum(r.kv_bytes_handed for r in runs),
        "kv_bytes_handed_per_problem": sum(r.kv_bytes_handed for r in runs) / n if n else 0.0,
        "kv_bytes_in_per_agent_per_problem": {role: b / n for role, b in held.items()} if n else {},
        "knn_bytes_before": sum(e["kv_bytes_before"] for r in runs for e in r.knn_events),
        "knn_bytes_after": sum(e["kv_bytes_after"] for r in runs for e in r.knn_events),
    }


def ratios(summaries: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """latent_mas against text_mas, from the same run: speedup and token reduction (None if either is missing)."""
    text, latent = summaries.get("text_mas"), summaries.get("latent_mas")
    if not text or not latent:
        return None
    out = {
        "speedup_latent_vs_text": (
            text["seconds_total"] / latent["seconds_total"] if latent["seconds_total"] else float("nan")
        ),
        "token_ratio_latent_vs_text": (
            latent["generated_tokens"] / text["generated_tokens"] if text["generated_tokens"] else float("nan")
        ),
        "accuracy_delta_latent_minus_text": latent["accuracy"] - text["accuracy"],
    }
    out["token_reduction_latent_vs_text"] = 1 - out["token_ratio_latent_vs_text"]
    return out


def trace_record(run: ProblemRun) -> dict[str, Any]:
    """One JSON line of the per-problem trace."""
    p = run.problem
    return {
        "method": run.method,
        "problem": p.index,
        "level": p.level,
        "question": p.question,
        "gold": p.gold,
        "pred": run.pred,
        "correct": run.correct,
        "seconds": run.seconds,
        "latent_seconds": run.latent_seconds,
        "generated_tokens": run.generated_tokens,
        "kv_bytes_handed": run.kv_bytes_handed,
        "agents": [asdict(a) for a in run.agents],
        "knn_events": run.knn_events,
    }


def write_outputs(out_dir: Path, results: dict[str, Any], runs: dict[str, list[ProblemRun]]) -> list[Path]:
    """``results.json`` and ``trace.jsonl`` (one line per method and problem), both written atomically."""
    lines = [json.dumps(to_jsonable(trace_record(r)), allow_nan=False) for m in runs for r in runs[m]]
    return [write_json(out_dir / "results.json", results), write_text(out_dir / "trace.jsonl", "\n".join(lines) + "\n")]
