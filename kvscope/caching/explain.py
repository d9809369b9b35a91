"""``explain_caching``: every measurement behind ``kvscope caching`` in one function, and its result.

``explain_caching`` does no file I/O; ``CachingReport.save(dir)`` writes the figures and ``caching.json``
(what ``kvscope caching`` writes), and in a notebook the report shows itself as a table and its figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kvscope.caching.flops import FlopModel, generation_flops
from kvscope.caching.prefix import PrefixReuse, prefix_reuse
from kvscope.caching.projections import ATTENTION_TOLERANCE, LayerProjections, hooked_forward
from kvscope.caching.settings import CachingSettings
from kvscope.caching.stepping import DecodeComparison, GenerationTrace, decode_step, timed_generation
from kvscope.capture.capturing import encode_prompt, token_strings
from kvscope.configcheck import check_layer
from kvscope.errors import UsageError
from kvscope.kit.results import ResultMixin
from kvscope.models import describe

DEFAULT_PROMPT = (
    "You are a concise geography assistant. Answer in one short sentence. Question: What is the capital of France?"
)
DEFAULT_SECOND_PROMPT = (
    "You are a concise geography assistant. Answer in one short sentence. "
    "Question: What is the capital of Germany, and which river runs through it?"
)


@dataclass(repr=False)
class CachingReport(ResultMixin):
    """Everything ``kvscope caching`` measures. Tensors are float32 on CPU.

    ``projections``: the chosen layer on prompt 1; ``probs`` ``[q_head, n, n]`` its attention rebuilt by
    hand; ``decode``: one real cached decode step versus recomputation; ``generation``: greedy traces
    keyed by ``use_cache``; ``work``: counted cumulative FLOPs of those traces; ``prefix``: prompt 2 reusing
    prompt 1's cached prefix.
    """

    info: Any
    layer: int
    tokens: list[str]
    projections: LayerProjections
    probs: torch.Tensor
    manual_vs_model: float
    decode: DecodeComparison
    generation: dict[bool, GenerationTrace]
    work: dict[bool, list[int]]
    prefix: PrefixReuse

    @property
    def generation_tokens_equal(self) -> bool:
        return self.generation[True].tokens == self.generation[False].tokens

    def speedups(self) -> dict[str, float]:
        """Without-cache over with-cache time: last step (longest sequence), decode steps only (median), total."""
        w, wo = self.generation[True].step_seconds, self.generation[False].step_seconds
        rest = slice(1, None) if len(w) > 1 else slice(0, None)
        return {
            "last_step": wo[-1] / w[-1],
            "median_decode_step": statistics.median(wo[rest]) / statistics.median(w[rest]),
            "total": sum(wo) / sum(w),
        }

    def gqa(self) -> dict[str, Any]:
        """The q_head -> kv_head map and the KV bytes per token with GQA against MHA (all heads cached)."""
        i = self.info
        mha = i.kv_bytes_per_token * i.q_heads // i.kv_heads
        return {
            "q_heads": i.q_heads,
            "kv_heads": i.kv_heads,
            "group_size": i.group_size,
            "kv_head_of_q_head": [h // i.group_size for h in range(i.q_heads)],
            "kv_bytes_per_token_gqa": i.kv_bytes_per_token,
            "kv_bytes_per_token_mha": mha,
            "saving_ratio": mha / i.kv_bytes_per_token,
            "max_positions": i.max_positions,
            "kv_bytes_at_max_positions_gqa": i.kv_bytes_per_token * i.max_positions,
            "kv_bytes_at_max_positions_mha": mha * i.max_positions,
        }

    command = "caching"

    def summary(self) -> list[tuple[str, Any]]:
        d = self.decode.diffs
        return [
            ("model", repr(self.info.name)),
            ("layer", self.layer),
            ("tokens", len(self.tokens)),
            ("manual_vs_model", f"{self.manual_vs_model:.1e}"),
            ("cached_vs_full_logits", f"{d['logits_cached_vs_full']:.1e}"),
            ("speedup_last_step", f"{self.speedups()['last_step']:.1f}x"),
            ("prefix_reused", f"{self.prefix.reused}/{len(self.prefix.tokens2)}"),
        ]

    def details(self) -> list[tuple[str, str]]:
        """``(name, value)`` rows: parity checks, speedups and the share of compute a reused prefix saves."""
        return summary_rows(self.to_dict())

    def figures(self) -> dict[str, Any]:
        """Every figure of ``CACHING_FIGURES``, drawn now: file name -> matplotlib Figure."""
        from kvscope.caching.caching_figures import CACHING_FIGURES
        from kvscope.kit.figures import shown

        return shown({name: draw(self) for name, draw in CACHING_FIGURES.items()})

    def write(self, folder: Path) -> list[str]:
        """The figures and ``caching.json``, which lists them under ``files`` (names in the same folder)."""
        from kvscope.fileio import write_json
        from kvscope.kit.figures import save_figure

        names = [save_figure(fig, folder / name).name for name, fig in self.figures().items()]
        write_json(folder / "caching.json", {**self.to_dict(), "files": [*names, "caching.json"]})
        return [*names, "caching.json"]

    def to_dict(self) -> dict[str, Any]:
        """Every number for ``caching.json`` (no tensors beyond small lists)."""
        p, d, r = self.projections, self.decode, self.prefix
        shape = lambda t: list(t.shape)  # noqa: E731
        return {
            "model": self.info.to_dict(),
            "layer": self.layer,
            "tokens": self.tokens,
            "projections": {
                "q": shape(p.q_pre),
                "k": shape(p.k_pre),
                "v": shape(p.v),
                "o_proj_input": shape(p.o_in),
                "layout": "[heads, position, head_dim]",
                "scaling": p.scaling,
                "manual_attention_vs_o_proj_input_max_abs": self.manual_vs_model,
                "tolerance": ATTENTION_TOLERANCE,
                "matches": self.manual_vs_model <= ATTENTION_TOLERANCE,
                "key_norm_change_from_rope_max_rel": _norm_change(p.k_pre, p.k_post),
            },
            "gqa": self.gqa(),
            "decode_step": {
                "cached_slots_consumed": d.cached_slots_before,
                "query_rows": d.step_query_rows,
                "max_abs_diff": d.diffs,
            },
            "generation": {
                "new_tokens": len(self.generation[True].tokens),
                "tokens_equal": self.generation_tokens_equal,
                "tokens": self.generation[True].tokens,
                "lengths": self.generation[True].lengths,
                "seconds_per_step_with_cache": self.generation[True].step_seconds,
                "seconds_per_step_without_cache": self.generation[False].step_seconds,
                "speedup": self.speedups(),
                "flops_cumulative_with_cache": self.work[True],
                "flops_cumulative_without_cache": self.work[False],
            },
            "prefix_reuse": {
                "prompt1_tokens": len(r.tokens1),
                "prompt2_tokens": len(r.tokens2),
                "shared_prefix_tokens": r.shared,
                "reused_tokens": r.reused,
                "flops": r.flops,
                "logits_max_abs_diff": r.logits_max_abs_diff,
                "logits_match": r.logits_match,
                "seconds_fresh": r.seconds_fresh,
                "seconds_reuse": r.seconds_reuse,
                "seconds_saved": r.seconds_saved,
                "seconds_cache_copy": r.seconds_cache_copy,
            },
        }


def _norm_change(pre: torch.Tensor, post: torch.Tensor) -> float:
    """Largest relative change of a key's L2 norm through RoPE (a rotation: ~1e-7 in float32)."""
    a, b = pre.norm(dim=-1), post.norm(dim=-1)
    return float(((a - b).abs() / a.clamp_min(1e-12)).max())


def summary_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary table of a ``CachingReport.to_dict()``: max abs differences, speedups, compute reused."""
    dec, gen, pre = d["decode_step"], d["generation"], d["prefix_reuse"]
    diffs, sp = dec["max_abs_diff"], gen["speedup"]
    reuse = (
        f"{pre['reused_tokens']}/{pre['prompt2_tokens']} tokens, {pre['flops']['share_total']:.1%} of FLOPs "
        f"({pre['flops']['share_attention']:.1%} of attention)"
        if pre["reused_tokens"]
        else "0 tokens (no shared prefix)"
    )
    return [
        ("layer", str(d["layer"])),
        (
            "attention by hand vs o_proj input",
            f"{d['projections']['manual_attention_vs_o_proj_input_max_abs']:.1e} "
            f"({'match' if d['projections']['matches'] else 'MISMATCH'})",
        ),
        (
            "cached decode step vs recompute",
            f"attention {diffs['attention_row_cached_vs_full']:.1e}, logits {diffs['logits_cached_vs_full']:.1e}",
        ),
        ("greedy tokens equal (cache / none)", f"{gen['tokens_equal']} ({gen['new_tokens']} tokens)"),
        ("speedup with cache", f"last step {sp['last_step']:.1f}x, total {sp['total']:.1f}x"),
        ("prefix reused", reuse),
        ("prefix time fresh / reuse", f"{pre['seconds_fresh'] * 1e3:.1f} / {pre['seconds_reuse'] * 1e3:.1f} ms"),
        (
            "reused logits vs fresh run",
            f"{pre['logits_max_abs_diff']:.1e} ({'match' if pre['logits_match'] else 'MISMATCH'})",
        ),
    ]


def check_second_prompt(second_prompt: str | None) -> str:
    """``second_prompt``, or the default when None; an empty or blank one is a ``UsageError``."""
    if second_prompt is None:
        return DEFAULT_SECOND_PROMPT
    if not second_prompt.strip():
        raise UsageError("second_prompt is empty: give a text with some characters", param="second_prompt")
    return second_prompt


def explain_caching(
    model: Any,
    tokenizer: Any,
    prompt: str = DEFAULT_PROMPT,
    second_prompt: str | None = None,
    *,
    layer: int | None = CachingSettings.layer,
    new_tokens: int = CachingSettings.new_tokens,
    repeats: int = CachingSettings.repeats,
    info: Any = None,
    quiet: bool = False,
) -> CachingReport:
    """Show KV caching at work on ``model`` (any loaded Llama-style HF causal LM) and check it.

    Hooks ``layer`` (default: the middle one) on ``prompt``, rebuilds its attention by hand, compares one
    cached decode step with recomputation, times greedy decoding of ``new_tokens`` with and without the cache
    (``repeats`` interleaved runs, medians), and continues ``second_prompt`` from ``prompt``'s cached prefix.
    ``prompt`` needs at least 2 tokens. ``info`` defaults to ``describe(model)``; ``quiet`` hides progress.

    >>> import kvscope as ks
    >>> model, tok, info = ks.load_model("tiny")
    >>> report = ks.explain_caching(model, tok, "Hello cache", "Hello world", new_tokens=4, repeats=1)
    >>> report.manual_vs_model < 1e-4, report.generation_tokens_equal, report.prefix.reused  # "Hello " is shared
    (True, True, 6)
    """
    from kvscope.errors import expect_model

    expect_model(model, tokenizer)
    info = info or describe(model)
    layer = check_layer(layer, info.layers)
    second_prompt = check_second_prompt(second_prompt)
    if not 1 <= new_tokens < info.max_positions:
        raise UsageError(
            f"new_tokens must be between 1 and {info.max_positions - 1} (the model's max positions)", param="new_tokens"
        )
    ids1 = encode_prompt(tokenizer, prompt, info.max_positions - new_tokens)
    ids2 = encode_prompt(tokenizer, second_prompt, info.max_positions)
    if ids1.shape[1] < 2:
        raise UsageError("the prompt needs at least 2 tokens (one to cache, one to decode)")
    tokens1 = token_strings(tokenizer, ids1[0].tolist())[0]
    proj, _ = hooked_forward(model, info, ids1, layer, use_cache=False)
    out, probs = proj.by_hand()
    generation = timed_generation(model, ids1, new_tokens, repeats, quiet=quiet)
    fm = FlopModel.from_model(model, info)
    work = {mode: generation_flops(fm, ids1.shape[1], new_tokens, mode) for mode in (True, False)}
    return CachingReport(
        info=info,
        layer=layer,
        tokens=tokens1,
        projections=proj,
        probs=probs.float(),
        manual_vs_model=float((out - proj.o_in).abs().max()),
        decode=decode_step(model, info, ids1, layer, tokens1),
        generation=generation,
        work=work,
        prefix=prefix_reuse(
            model,
            info,
            ids1,
            ids2,
            layer,
            (tokens1, token_strings(tokenizer, ids2[0].tolist())[0]),
            repeats=max(3, repeats),
        ),
    )
