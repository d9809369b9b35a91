"""``run_mas``: the library entry point of LatentMAS, and its result.

Takes a user's own loaded causal LM and tokenizer, runs one method or all three on the problems
(interleaved per batch of problems), and returns a :class:`MasResult`; nothing is written unless
``result.save(dir)`` is called. The CLI (``kvscope mas``) is a thin client of this function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kvscope.errors import UsageError
from kvscope.kit.results import ResultMixin
from kvscope.mas.config import MasConfig
from kvscope.mas.methods import MasSettings, ProblemRun
from kvscope.mas.problems import Problem
from kvscope.mas.runner import method_names, ratios, run_interleaved, summarize_runs

GENERATE_DEFAULT_TOP_K = 50  # transformers' generate(): applied when neither the model nor the call sets top_k


def config_refusal(config: Any) -> str | None:
    """Why mas cannot run a model with ``config`` (read before any weights load), or None."""
    from kvscope.archs import layer_windows, text_config

    window = next((w for w in layer_windows(config) if w), None)
    if not window:
        return None
    return (
        f"kvscope mas needs full-attention caches, but this {text_config(config).model_type} model uses "
        f"sliding-window attention (window {window}), whose cache keeps only the last {window - 1} slots "
        "of those layers, and the agents' shared cache must keep every position"
    )


def check_model(model: Any) -> None:
    """Refuse models whose cache the shared-cache bookkeeping cannot follow (one line, before running)."""
    why = config_refusal(model.config)
    if why:
        raise UsageError(why)


def generate_top_k(model: Any) -> int | None:
    """The top-k that transformers' ``generate()`` applies when sampling with ``model``: its generation
    config's ``top_k`` (Qwen3's ships 20), else transformers' default of 50 for an unset one. The kNN fork
    sampled this way; kvscope applies no top-k unless ``top_k`` is given."""
    top_k = getattr(getattr(model, "generation_config", None), "top_k", None)
    return GENERATE_DEFAULT_TOP_K if top_k is None else int(top_k)


def as_problems(problems: Iterable[Any]) -> list[Problem]:
    """Problems from ``Problem`` objects, question strings (no gold), ``(question, gold)`` pairs or
    ``{"question", "gold"}`` dicts; numbered from 1 where they are not ``Problem`` already."""
    out = []
    for i, p in enumerate(problems, start=1):
        if isinstance(p, Problem):
            out.append(p)
        elif isinstance(p, str):
            out.append(Problem(i, p, ""))
        elif isinstance(p, dict):
            out.append(Problem(i, str(p["question"]), str(p.get("gold", ""))))
        else:
            question, gold = p
            out.append(Problem(i, str(question), str(gold)))
    if not out:
        raise UsageError("no problems to run")
    return out


@dataclass(repr=False)
class MasResult(ResultMixin):
    """Runs of each method (``runs[method]``: one :class:`ProblemRun` per problem, in order), their
    summaries and the latent_mas / text_mas ratios, all from the same interleaved run."""

    model: str
    task: str | None
    config: MasConfig
    runs: dict[str, list[ProblemRun]]
    torch_threads: int
    layers: int
    generate_top_k: int | None = None  # what model.generate() would have applied (generate_top_k)
    command = "mas"

    @property
    def summaries(self) -> dict[str, dict[str, Any]]:
        return {name: summarize_runs(r) for name, r in self.runs.items()}

    @property
    def ratios(self) -> dict[str, float] | None:
        return ratios(self.summaries)

    def to_dict(self) -> dict[str, Any]:
        """What ``results.json`` holds."""
        summaries = self.summaries
        return {
            "model": self.model,
            "task": self.task,
            "torch_threads": self.torch_threads,
            "config": self.config.record(),
            "generate_top_k": self.generate_top_k,
            "methods": summaries,
            "ratios": ratios(summaries),
        }

    def figures(self, multi: bool = True, single: bool = True) -> dict[str, Any]:
        """Heatmaps (file stem -> matplotlib Figure) of latent_mas runs made with ``similarities``."""
        from kvscope.kit.figures import shown
        from kvscope.mas.mas_figures import heatmap_figures

        return shown(heatmap_figures(self.runs.get("latent_mas", []), multi, single, self.layers))

    def write(self, folder: Path, multi: bool = False, single: bool = False, charts: bool = True) -> list[str]:
        """``results.json``, ``trace.jsonl`` and, when ``charts``, the chosen heatmaps in ``charts/``."""
        from kvscope.kit.figures import save_figures
        from kvscope.mas.runner import write_outputs

        names = [p.name for p in write_outputs(folder, self.to_dict(), self.runs)]
        figures = self.figures(multi, single) if charts and (multi or single) else {}
        if figures:
            (folder / "charts").mkdir()
            names += [f"charts/{n}" for n in save_figures(figures, folder / "charts")]
        return names

    def save(
        self,
        out: str | Path,
        multi: bool = False,
        single: bool = False,
        charts: str | Path | None = None,
        force: bool = False,
    ) -> list[Path]:
        """Write ``results.json``, ``trace.jsonl`` and the chosen heatmaps (into ``out/charts`` or ``charts``),
        each folder swapped in whole (kvscope.fileio.atomic_dir: a folder holding files kvscope did not
        write is refused unless ``force``). Returns the final paths."""
        files = super().save(out, force=force, multi=multi, single=single, charts=charts is None)
        if charts is not None and (multi or single):
            from kvscope.fileio import atomic_dir
            from kvscope.kit.figures import save_figures

            with atomic_dir(charts, command="mas --charts", force=force) as tmp:
                files += [Path(charts) / n for n in save_figures(self.figures(multi, single), tmp)]
        return files

    def summary(self) -> list[tuple[str, Any]]:
        n = len(next(iter(self.runs.values()), []))
        rows: list[tuple[str, Any]] = [("model", self.model), ("problems", n)]
        for name, s in self.summaries.items():
            rows.append((name, f"acc {s['accuracy']:.0%}, {s['generated_tokens_per_problem']:.0f} tok/problem"))
        r = self.ratios
        return rows + ([("latent_vs_text", f"{r['speedup_latent_vs_text']:.2f}x faster")] if r else [])

    def details(self) -> list[tuple[str, Any]]:
        """One row per method: accuracy, tokens, time, latent share and KV handed over per problem."""
        return [
            (
                name,
                f"accuracy {s['accuracy']:.1%} ({s['correct']}/{s['problems']}); "
                f"{s['generated_tokens_per_problem']:.1f} tokens / problem; "
                f"median {s['seconds_per_problem_median']:.2f} s / problem; "
                f"latent share of time {s['latent_share_of_time']:.1%}; "
                f"KV handed / problem (summed over hand-offs) {s['kv_bytes_handed_per_problem'] / 2**20:.2f} MiB",
            )
            for name, s in self.summaries.items()
        ]


def run_mas(
    model: Any,
    tokenizer: Any,
    problems: Iterable[Any],
    method: str = "latent_mas",
    *,
    config: MasConfig | None = None,
    info: Any = None,
    task: str | None = None,
    quiet: bool = False,
    **settings: Any,
) -> MasResult:
    """Run ``method`` ("baseline", "text_mas", "latent_mas" or "all") on ``problems``.

    ``settings`` are :class:`MasConfig`'s fields (``prompt``, ``latent_steps``, ``max_new_tokens``,
    ``temperature``, ``top_p``, ``top_k``, ``seed``, ``realign``, ``knn``, ``knn_positions``,
    ``include_old_prompts``, ``similarities``, ``batch_size``), or pass a ready ``config``. ``info``: the
    model's :class:`kvscope.models.ModelInfo` (derived from the model when None). Progress over problem
    batches shows on stderr in a terminal unless ``quiet``.
    """
    from kvscope.models import describe

    config = config if config is not None else MasConfig(**settings)
    names = method_names(method)
    problems = as_problems(problems)
    from kvscope.errors import expect_model

    expect_model(model, tokenizer)
    check_model(model)
    info = info if info is not None else describe(model)
    _check_lengths(tokenizer, problems, info.max_positions, config.max_new_tokens)
    runs = run_interleaved(MasSettings(model, tokenizer, info, config), names, problems, quiet=quiet)
    return MasResult(info.name, task, config, runs, torch.get_num_threads(), info.layers, generate_top_k(model))


def _check_lengths(tokenizer: Any, problems: list, positions: int, new_tokens: int) -> None:
    """Refuse (``UsageError``) a problem whose question alone, with ``new_tokens`` to generate, exceeds the
    model's ``positions``, before any problem runs (it would otherwise run until killed)."""
    from kvscope.errors import UsageError

    for p in problems if positions else []:
        n = len(tokenizer(p.question, add_special_tokens=False).input_ids)
        if n + new_tokens > positions:
            raise UsageError(
                f"problem {p.index} has {n:,} tokens; with {new_tokens} to generate that exceeds the model's "
                f"{positions:,} positions: shorten it"
            )
